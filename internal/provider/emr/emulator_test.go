package emr_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	sdkemr "github.com/aws/aws-sdk-go-v2/service/emr"
	"github.com/aws/aws-sdk-go-v2/service/emr/types"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/config"
	"github.com/berthhq/berth/internal/emulator"
	"github.com/berthhq/berth/internal/provider"
	"github.com/berthhq/berth/internal/provider/emr"
	"github.com/berthhq/berth/internal/provider/providertest"
	"github.com/berthhq/berth/internal/wait"
)

// deadline bounds every wait for the emulator, which runs on the wall
// clock with short times.
const deadline = 30 * time.Second

// world is an emulator behind a real HTTP server, and what a provider over
// it needs: the real SDK stack runs against it.
type world struct {
	emu  *emulator.Emulator
	url  string
	spec *config.EMRSpec
}

func newWorld(t *testing.T, o emulator.Options) *world {
	t.Helper()
	if o.BootTime == 0 {
		o.BootTime = 150 * time.Millisecond
	}
	if o.BootstrapTime == 0 {
		o.BootstrapTime = 50 * time.Millisecond
	}
	if o.TerminateTime == 0 {
		o.TerminateTime = 50 * time.Millisecond
	}
	if o.LogDelay == 0 {
		o.LogDelay = 20 * time.Millisecond
	}
	if o.LossLag == 0 {
		o.LossLag = 100 * time.Millisecond
	}
	o.WorkDir = t.TempDir()
	e := emulator.New(o)
	srv := httptest.NewServer(e)
	t.Cleanup(func() {
		e.Close()
		srv.Close()
	})
	return &world{emu: e, url: srv.URL, spec: &config.EMRSpec{
		Region: "us-east-1", Endpoint: srv.URL, ReleaseLabel: "emr-7.5.0", Applications: []string{"Spark"},
		ServiceRole: "EMR_DefaultRole", JobFlowRole: "EMR_EC2_DefaultRole", LogURI: "s3://logs/emr/",
		InstanceGroups: []config.InstanceGroup{{Role: "MASTER", InstanceType: "m5.xlarge", Count: 1}},
	}}
}

// testCredentials keep the SDK off the machine's AWS configuration.
var testCredentials = awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""))

// provider returns a new provider over the world, as a (re)started Berth
// of installation "inst-test" would make for pool "p".
func (w *world) provider(t *testing.T) *emr.Provider {
	t.Helper()
	return w.providerWith(t, emr.NewLimiter(nil))
}

// providerWith is provider on a limiter of the test's choosing.
func (w *world) providerWith(t *testing.T, lim *emr.Limiter) *emr.Provider {
	t.Helper()
	cl, err := emr.NewClients(context.Background(), w.spec, lim, testCredentials)
	if err != nil {
		t.Fatal(err)
	}
	p, err := emr.New(emr.Options{
		Pool: "p", Primary: w.spec, IdleTimeout: 10 * time.Minute, Installation: "inst-test",
		EMR: cl.EMR, S3: cl.S3, Limiter: lim, PollBase: 100 * time.Millisecond, CancelGrace: 500 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(t.Output(), nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConformance(t *testing.T) {
	worlds := sync.Map{}
	providertest.Run(t, providertest.Harness{
		New: func(t *testing.T) provider.Provider {
			w := newWorld(t, emulator.Options{})
			p := w.provider(t)
			worlds.Store(p, w)
			return p
		},
		Reopen: func(t *testing.T, p provider.Provider) provider.Provider {
			w, _ := worlds.Load(p)
			q := w.(*world).provider(t)
			worlds.Store(q, w)
			return q
		},
		Kill: func(t *testing.T, p provider.Provider, id string) {
			w, _ := worlds.Load(p)
			if err := w.(*world).emu.SpotLoss(id); err != nil {
				t.Fatalf("SpotLoss: %v", err)
			}
		},
		Success:     berth.Step{Args: []string{"true"}},
		Failure:     berth.Step{Args: []string{"false"}},
		LongRunning: berth.Step{Args: []string{"sleep", "3600"}},
		Unrunnable:  berth.Step{Args: []string{"env"}, Env: map[string]string{"A": "b"}},
		Deadline:    deadline,
	})
}

// ready starts a cluster and waits until it is ready.
func ready(t *testing.T, p *emr.Provider, slots int) string {
	t.Helper()
	id, err := p.CreateCluster(context.Background(), provider.CreateRequest{ClusterID: providertest.NewClusterID(), Pool: "p", Slots: slots})
	if err != nil {
		t.Fatalf("CreateCluster: %v", err)
	}
	providertest.WaitCluster(t, p, id, deadline, "ready", func(c provider.Cluster) bool { return c.State == berth.ClusterReady })
	return id
}

// submit adds a step named for a fresh attempt.
func submit(t *testing.T, p *emr.Provider, cluster string, args ...string) (id, name string) {
	t.Helper()
	name = providertest.NewStepName()
	id, err := p.SubmitStep(context.Background(), cluster, provider.StepRequest{Name: name, Step: berth.Step{Args: args}, Since: time.Now()})
	if err != nil {
		t.Fatalf("SubmitStep: %v", err)
	}
	return id, name
}

// stepsNamed counts the emulator's steps of a name on a cluster.
func (w *world) stepsNamed(t *testing.T, cluster, name string) int {
	t.Helper()
	c, ok := w.emu.Cluster(cluster)
	if !ok {
		t.Fatalf("the emulator has no cluster %s", cluster)
	}
	n := 0
	for _, s := range c.Steps {
		if s.Name == name {
			n++
		}
	}
	return n
}

// A poll costs what is running, not what ran: after 112 steps (more than
// two pages of ListSteps), a poll with nothing new is one ListSteps call,
// and one with a step just ended is two.
func TestPollCostDoesNotGrowWithHistory(t *testing.T) {
	w := newWorld(t, emulator.Options{})
	// EMR's pace would make adding the steps take minutes.
	p := w.providerWith(t, emr.NewScaledLimiter(nil, 100))
	cluster := ready(t, p, 8)
	var ids []string
	for range 14 {
		batch := ids[len(ids):]
		for range 8 {
			id, _ := submit(t, p, cluster, "true")
			batch = append(batch, id)
		}
		ids = append(ids, batch...)
		for _, id := range batch {
			providertest.WaitStep(t, p, cluster, id, deadline, "ended", providertest.Terminal)
		}
	}
	steps, err := p.ListSteps(context.Background(), cluster)
	if err != nil || len(steps) != len(ids) {
		t.Fatalf("ListSteps: %d steps, %v; want %d", len(steps), err, len(ids))
	}
	before := w.emu.Calls()["ListSteps"]
	if _, err := p.ListSteps(context.Background(), cluster); err != nil {
		t.Fatal(err)
	}
	if got := w.emu.Calls()["ListSteps"] - before; got != 1 {
		t.Errorf("a poll of a cluster with %d finished steps cost %d ListSteps calls, want 1", len(ids), got)
	}
	id, _ := submit(t, p, cluster, "true")
	wait.For(t, deadline, "the step ended on the emulator", func() bool {
		c, _ := w.emu.Cluster(cluster)
		for _, s := range c.Steps {
			if s.ID == id {
				return s.State == "COMPLETED"
			}
		}
		return false
	})
	before = w.emu.Calls()["ListSteps"]
	steps, err = p.ListSteps(context.Background(), cluster)
	if err != nil {
		t.Fatal(err)
	}
	if got := w.emu.Calls()["ListSteps"] - before; got != 2 {
		t.Errorf("a poll that sees one step end cost %d ListSteps calls, want 2", got)
	}
	if s := find(steps, id); s == nil || s.State != berth.StepSucceeded {
		t.Errorf("the step that ended is %+v, want succeeded", s)
	}
}

func find(steps []provider.Step, id string) *provider.Step {
	for i := range steps {
		if steps[i].ID == id {
			return &steps[i]
		}
	}
	return nil
}

// A Berth that crashed after AddJobFlowSteps, or whose call's answer was
// lost, finds the step by name instead of adding it again.
func TestSubmitFindsTheStepItAdded(t *testing.T) {
	w := newWorld(t, emulator.Options{})
	p := w.provider(t)
	cluster := ready(t, p, 4)
	since := time.Now()
	t.Run("after a restart", func(t *testing.T) {
		id, name := submit(t, p, cluster, "sleep", "60")
		q := w.provider(t)
		again, err := q.SubmitStep(context.Background(), cluster, provider.StepRequest{Name: name, Step: berth.Step{Args: []string{"sleep", "60"}}, Since: since})
		if err != nil || again != id {
			t.Fatalf("SubmitStep after a restart = %q, %v; want %q", again, err, id)
		}
		if n := w.stepsNamed(t, cluster, name); n != 1 {
			t.Errorf("%d steps named %s, want 1", n, name)
		}
	})
	t.Run("after a lost answer", func(t *testing.T) {
		w.emu.DropReplies("AddJobFlowSteps", 1)
		name := providertest.NewStepName()
		req := provider.StepRequest{Name: name, Step: berth.Step{Args: []string{"sleep", "60"}}, Since: since}
		if _, err := p.SubmitStep(context.Background(), cluster, req); err == nil {
			t.Fatal("SubmitStep with its answer lost succeeded")
		}
		id, err := p.SubmitStep(context.Background(), cluster, req)
		if err != nil || id == "" {
			t.Fatalf("SubmitStep again = %q, %v", id, err)
		}
		if n := w.stepsNamed(t, cluster, name); n != 1 {
			t.Errorf("%d steps named %s, want 1", n, name)
		}
	})
}

// A Berth whose RunJobFlow answer was lost, or that crashed before it
// recorded it, finds the cluster by its name instead of starting another.
func TestCreateFindsTheClusterItStarted(t *testing.T) {
	w := newWorld(t, emulator.Options{})
	p := w.provider(t)
	req := provider.CreateRequest{ClusterID: providertest.NewClusterID(), Pool: "p", Slots: 2}
	w.emu.DropReplies("RunJobFlow", 1)
	if _, err := p.CreateCluster(context.Background(), req); err == nil {
		t.Fatal("CreateCluster with its answer lost succeeded")
	}
	id, err := p.CreateCluster(context.Background(), req)
	if err != nil {
		t.Fatalf("CreateCluster again: %v", err)
	}
	again, err := w.provider(t).CreateCluster(context.Background(), req)
	if err != nil || again != id {
		t.Fatalf("CreateCluster after a restart = %q, %v; want %q", again, err, id)
	}
	if n := len(w.emu.Snapshot()); n != 1 {
		t.Errorf("%d clusters started, want 1", n)
	}
	found, ok, err := w.provider(t).FindCluster(context.Background(), req.ClusterID)
	if err != nil || !ok || found != id {
		t.Errorf("FindCluster = %q, %v, %v; want %q", found, ok, err, id)
	}
}

// What RunJobFlow and AddJobFlowSteps carry on the wire.
func TestWhatBerthSends(t *testing.T) {
	w := newWorld(t, emulator.Options{})
	p := w.provider(t)
	cluster := ready(t, p, 3)
	var run struct {
		Name                  string
		StepConcurrencyLevel  int
		Instances             struct{ KeepJobFlowAliveWhenNoSteps bool }
		AutoTerminationPolicy struct{ IdleTimeout int64 }
		Tags                  []struct{ Key, Value string }
	}
	if err := json.Unmarshal(w.emu.Requests("RunJobFlow")[0], &run); err != nil {
		t.Fatal(err)
	}
	tags := map[string]string{}
	for _, tg := range run.Tags {
		tags[tg.Key] = tg.Value
	}
	if run.StepConcurrencyLevel != 3 || !run.Instances.KeepJobFlowAliveWhenNoSteps || run.AutoTerminationPolicy.IdleTimeout != 1200 ||
		tags[emr.TagInstallation] != "inst-test" || tags[emr.TagPool] != "p" || tags[emr.TagCluster] == "" || !strings.HasPrefix(run.Name, "berth inst-test p ") {
		t.Errorf("RunJobFlow sent %+v", run)
	}
	name := providertest.NewStepName()
	role := "arn:aws:iam::123456789012:role/spark-job"
	if _, err := p.SubmitStep(context.Background(), cluster, provider.StepRequest{Name: name, Since: time.Now(), ExecutionRoleArn: role,
		Step: berth.Step{Jar: "s3://b/app.jar", MainClass: "com.example.Main", Args: []string{"--day", "1"}, Properties: map[string]string{"k": "v"}}}); err != nil {
		t.Fatal(err)
	}
	reqs := w.emu.Requests("AddJobFlowSteps")
	var add struct {
		ExecutionRoleArn string
		Steps            []struct {
			Name, ActionOnFailure string
			HadoopJarStep         struct {
				Jar, MainClass string
				Args           []string
				Properties     []struct{ Key, Value string }
			}
		}
	}
	if err := json.Unmarshal(reqs[len(reqs)-1], &add); err != nil {
		t.Fatal(err)
	}
	if len(add.Steps) != 1 {
		t.Fatalf("AddJobFlowSteps sent %d steps, want 1", len(add.Steps))
	}
	s := add.Steps[0]
	if add.ExecutionRoleArn != role || s.Name != name || s.ActionOnFailure != "CONTINUE" || s.HadoopJarStep.Jar != "s3://b/app.jar" ||
		s.HadoopJarStep.MainClass != "com.example.Main" || len(s.HadoopJarStep.Properties) != 1 || strings.Join(s.HadoopJarStep.Args, " ") != "--day 1" {
		t.Errorf("AddJobFlowSteps sent %+v", add)
	}
}

// EMR's failures as Berth's classes, end to end over the wire.
func TestFailureClasses(t *testing.T) {
	t.Run("bootstrap failure is permanent", func(t *testing.T) {
		w := newWorld(t, emulator.Options{})
		p := w.provider(t)
		w.emu.FailBootstraps(1)
		id, err := p.CreateCluster(context.Background(), provider.CreateRequest{ClusterID: providertest.NewClusterID(), Pool: "p", Slots: 1})
		if err != nil {
			t.Fatal(err)
		}
		c := providertest.WaitCluster(t, p, id, deadline, "ended", func(c provider.Cluster) bool { return c.State.Terminal() })
		if c.State != berth.ClusterLost || c.Class != provider.ClassPermanent || !strings.Contains(c.Reason, "BOOTSTRAP_FAILURE") {
			t.Errorf("cluster %+v, want lost, permanent, with EMR's reason", c)
		}
	})
	t.Run("capacity", func(t *testing.T) {
		w := newWorld(t, emulator.Options{})
		p := w.provider(t)
		w.emu.FailCapacity(1)
		id, err := p.CreateCluster(context.Background(), provider.CreateRequest{ClusterID: providertest.NewClusterID(), Pool: "p", Slots: 1})
		if err != nil {
			t.Fatal(err)
		}
		c := providertest.WaitCluster(t, p, id, deadline, "ended", func(c provider.Cluster) bool { return c.State.Terminal() })
		if c.State != berth.ClusterLost || c.Class != provider.ClassCapacity {
			t.Errorf("cluster %+v, want lost for capacity", c)
		}
	})
	for _, code := range []string{"ValidationException", "AccessDeniedException"} {
		t.Run(code+" on RunJobFlow is permanent", func(t *testing.T) {
			w := newWorld(t, emulator.Options{})
			p := w.provider(t)
			w.emu.FailCalls("RunJobFlow", code, "no, because", 400, 1)
			_, err := p.CreateCluster(context.Background(), provider.CreateRequest{ClusterID: providertest.NewClusterID(), Pool: "p", Slots: 1})
			if provider.ClassOf(err) != provider.ClassPermanent || !strings.Contains(err.Error(), "no, because") {
				t.Errorf("CreateCluster: %v (%s), want permanent with EMR's message", err, provider.ClassOf(err))
			}
		})
	}
	t.Run("a lost node fails the step before the cluster says so", func(t *testing.T) {
		w := newWorld(t, emulator.Options{LossLag: 2 * time.Second})
		p := w.provider(t)
		cluster := ready(t, p, 2)
		id, _ := submit(t, p, cluster, "sleep", "3600")
		providertest.WaitStep(t, p, cluster, id, deadline, "running", func(s provider.Step) bool { return s.State == berth.StepRunning })
		if err := w.emu.InstanceFailure(cluster, false); err != nil {
			t.Fatal(err)
		}
		providertest.WaitStep(t, p, cluster, id, deadline, "failed", providertest.Terminal)
		c := providertest.WaitCluster(t, p, cluster, deadline, "lost", func(c provider.Cluster) bool { return c.State.Terminal() })
		if c.State != berth.ClusterLost || c.Class != provider.ClassCapacity {
			t.Errorf("cluster %+v, want lost for capacity", c)
		}
		if g := p.AttributionGrace(); g < 2*time.Second {
			t.Errorf("attribution grace %s is shorter than the emulator's loss lag", g)
		}
	})
	t.Run("a failed step carries EMR's details", func(t *testing.T) {
		w := newWorld(t, emulator.Options{})
		p := w.provider(t)
		cluster := ready(t, p, 1)
		id, _ := submit(t, p, cluster, "sh", "-c", "exit 3")
		s := providertest.WaitStep(t, p, cluster, id, deadline, "ended", providertest.Terminal)
		if s.State != berth.StepFailed || !strings.Contains(s.Message, "s3://logs/emr/") {
			t.Errorf("step %+v, want failed with its log file", s)
		}
	})
}

// A step that ignores its interrupt is sent TERMINATE_PROCESS after the
// cancel grace.
func TestCancelEscalates(t *testing.T) {
	w := newWorld(t, emulator.Options{})
	p := w.provider(t)
	cluster := ready(t, p, 1)
	id, _ := submit(t, p, cluster, "sh", "-c", "trap '' TERM INT; while :; do sleep 0.1; done")
	providertest.WaitStep(t, p, cluster, id, deadline, "running", func(s provider.Step) bool { return s.State == berth.StepRunning })
	if err := p.CancelStep(context.Background(), cluster, id); err != nil {
		t.Fatal(err)
	}
	s := providertest.WaitStep(t, p, cluster, id, deadline, "cancelled", providertest.Terminal)
	if s.State != berth.StepCancelled {
		t.Errorf("step %+v, want cancelled", s)
	}
	var how []string
	for _, r := range w.emu.Requests("CancelSteps") {
		var in struct{ StepCancellationOption string }
		json.Unmarshal(r, &in)
		how = append(how, in.StepCancellationOption)
	}
	if len(how) != 2 || how[0] != "SEND_INTERRUPT" || how[1] != "TERMINATE_PROCESS" {
		t.Errorf("CancelSteps sent %v, want SEND_INTERRUPT then TERMINATE_PROCESS", how)
	}
}

// Logs come from the cluster's log URI once EMR wrote them; before, the
// answer says where they will be.
func TestStepLogs(t *testing.T) {
	w := newWorld(t, emulator.Options{LogDelay: time.Hour})
	p := w.provider(t)
	cluster := ready(t, p, 1)
	id, _ := submit(t, p, cluster, "sh", "-c", "echo to-stdout; echo to-stderr >&2")
	providertest.WaitStep(t, p, cluster, id, deadline, "ended", providertest.Terminal)
	logs, err := p.StepLogs(context.Background(), cluster, id)
	want := fmt.Sprintf("s3://logs/emr/%s/steps/%s/", cluster, id)
	if err != nil || logs.Location != want || !strings.Contains(logs.Stderr, "not written") {
		t.Errorf("logs before EMR wrote them: %+v, %v; want the location %s", logs, err, want)
	}
	// The logs arrive: the emulator's S3 has them (as EMR's log pusher
	// would put them).
	w.emu.PutObject("logs", fmt.Sprintf("emr/%s/steps/%s/stdout.gz", cluster, id), gz(t, "to-stdout\n"))
	logs, err = p.StepLogs(context.Background(), cluster, id)
	if err != nil || logs.Stdout != "to-stdout\n" {
		t.Errorf("logs: %+v, %v; want stdout to-stdout", logs, err)
	}
}

// A cluster of this installation and pool that Berth did not start in this
// process is listed; one of another installation is not.
func TestListClusters(t *testing.T) {
	w := newWorld(t, emulator.Options{})
	p := w.provider(t)
	mine := ready(t, p, 1)
	cfg := aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(w.url), Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "")}
	other, err := sdkemr.NewFromConfig(cfg).RunJobFlow(context.Background(), &sdkemr.RunJobFlowInput{
		Name: aws.String("berth inst-other p cl-x"), ReleaseLabel: aws.String("emr-7.5.0"),
		Instances: &types.JobFlowInstancesConfig{KeepJobFlowAliveWhenNoSteps: aws.Bool(true),
			InstanceGroups: []types.InstanceGroupConfig{{InstanceRole: types.InstanceRoleTypeMaster, InstanceType: aws.String("m5.xlarge"), InstanceCount: aws.Int32(1)}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	listed, err := w.provider(t).ListClusters(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0].ID != mine || listed[0].ClusterID == "" {
		t.Errorf("listed %+v, want only %s (not %s of another installation)", listed, mine, aws.ToString(other.JobFlowId))
	}
}

// gz is text gzipped, as EMR writes its logs.
func gz(t *testing.T, text string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write([]byte(text)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// A step id EMR does not know, tracked after a restart, is asked about a
// few times and then forgotten: a poll costs one call again.
func TestUnknownTrackedStepIsForgotten(t *testing.T) {
	w := newWorld(t, emulator.Options{})
	p := w.provider(t)
	cluster := ready(t, p, 1)
	p.TrackSteps(cluster, []provider.TrackedStep{{ID: "s-0000000000000"}})
	for range 3 {
		if _, err := p.ListSteps(context.Background(), cluster); err != nil {
			t.Fatalf("ListSteps with an unknown tracked step: %v", err)
		}
	}
	before := w.emu.Calls()["ListSteps"]
	if _, err := p.ListSteps(context.Background(), cluster); err != nil {
		t.Fatal(err)
	}
	if got := w.emu.Calls()["ListSteps"] - before; got != 1 {
		t.Errorf("a poll cost %d ListSteps calls after the unknown step was forgotten, want 1", got)
	}
}

// A step failed by a node lost under it, its cluster living on, is
// reported as the node's loss, for the service to charge the
// infrastructure rather than the job.
func TestLostNodeStepIsMarkedLost(t *testing.T) {
	w := newWorld(t, emulator.Options{})
	p := w.provider(t)
	cluster := ready(t, p, 2)
	id, _ := submit(t, p, cluster, "sleep", "3600")
	providertest.WaitStep(t, p, cluster, id, deadline, "running", func(s provider.Step) bool { return s.State == berth.StepRunning })
	if err := w.emu.InstanceFailure(cluster, true); err != nil {
		t.Fatal(err)
	}
	s := providertest.WaitStep(t, p, cluster, id, deadline, "ended", providertest.Terminal)
	if s.State != berth.StepFailed || !s.Lost {
		t.Errorf("step %+v, want failed and marked lost", s)
	}
	done, _ := submit(t, p, cluster, "false")
	if s := providertest.WaitStep(t, p, cluster, done, deadline, "ended", providertest.Terminal); s.Lost {
		t.Errorf("a step that failed by itself is marked lost: %+v", s)
	}
}

// A step Berth added but never recorded the id of, which ran to its end
// while Berth was down and whose cluster ended meanwhile, is found by
// name once the restarted service tracks it: its success is not lost,
// and the job is not run again.
func TestTrackedByNameAfterTheClusterEnded(t *testing.T) {
	w := newWorld(t, emulator.Options{})
	p := w.provider(t)
	cluster := ready(t, p, 1)
	since := time.Now()
	id, name := submit(t, p, cluster, "true")
	providertest.WaitStep(t, p, cluster, id, deadline, "ended", providertest.Terminal)
	if err := p.TerminateCluster(context.Background(), cluster); err != nil {
		t.Fatal(err)
	}
	providertest.WaitCluster(t, p, cluster, deadline, "terminated", func(c provider.Cluster) bool { return c.State.Terminal() })

	q := w.provider(t)
	q.TrackSteps(cluster, []provider.TrackedStep{{Name: name, Since: since}})
	steps, err := q.ListSteps(context.Background(), cluster)
	if err != nil {
		t.Fatal(err)
	}
	if s := find(steps, id); s == nil || s.Name != name || s.State != berth.StepSucceeded {
		t.Errorf("the step tracked by name is %+v, want %s succeeded", s, id)
	}
}
