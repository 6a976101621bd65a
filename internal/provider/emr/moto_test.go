package emr_test

// The provider's wire contract with moto_server, through the provider's
// own methods, checked against what moto reports to the raw SDK clients.
// moto runs nothing (internal/testenv/moto says what it does and does not
// do): these tests pin what Berth sends and what it makes of moto's
// faithful answers; the emulator tests cover what takes time.

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	sdkemr "github.com/aws/aws-sdk-go-v2/service/emr"
	"github.com/aws/aws-sdk-go-v2/service/emr/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/config"
	"github.com/berthhq/berth/internal/provider"
	"github.com/berthhq/berth/internal/provider/emr"
	"github.com/berthhq/berth/internal/provider/providertest"
	"github.com/berthhq/berth/internal/testenv/moto"
)

func TestMain(m *testing.M) { moto.Main(m) }

// motoRegion is the only region moto's EMR serves.
const motoRegion = "us-east-1"

// motoWorld is one moto account (a Shared handle), the raw SDK clients
// that look at it, and a pool's spec whose clusters log to a bucket of
// the world's own (made only by the tests that read logs).
type motoWorld struct {
	srv    *moto.Server
	emr    *sdkemr.Client
	s3     *s3.Client
	spec   *config.EMRSpec
	bucket string
	// calls counts the requests of every provider made on the world.
	calls *callCounter
}

func newMotoWorld(t *testing.T) *motoWorld {
	t.Helper()
	srv := moto.Shared(t)
	cfg := srv.AWSConfig(motoRegion)
	// Bucket names are global in moto, across its accounts.
	bucket := "berth-" + strings.ToLower(rand.Text())
	return &motoWorld{
		srv: srv, emr: sdkemr.NewFromConfig(cfg), bucket: bucket,
		s3:    s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true }),
		calls: &callCounter{n: map[string]int{}},
		spec: &config.EMRSpec{
			Region: motoRegion, Endpoint: srv.URL(), ReleaseLabel: "emr-7.5.0", Applications: []string{"Spark", "Hadoop"},
			ServiceRole: "EMR_DefaultRole", JobFlowRole: "EMR_EC2_DefaultRole", LogURI: "s3://" + bucket + "/emr/",
			InstanceGroups: []config.InstanceGroup{
				{Role: "MASTER", InstanceType: "m5.xlarge", Count: 1},
				{Role: "CORE", InstanceType: "m5.2xlarge", Count: 2, Market: "SPOT", BidPrice: "0.25"},
			},
			Tags: map[string]string{"team": "data"},
		},
	}
}

// provider is a new provider of installation "inst-test" and pool "p"
// over the world, as a (re)started Berth would make.
func (w *motoWorld) provider(t *testing.T) *emr.Provider {
	t.Helper()
	return w.providerOf(t, "inst-test", "p")
}

// providerOf is a provider of an installation and pool over the world:
// the clients emr.NewClients makes, sending the handle's account and
// counted by w.calls. Its limiter runs 100 times EMR's pace, which is not
// what these tests are about.
func (w *motoWorld) providerOf(t *testing.T, installation, pool string) *emr.Provider {
	t.Helper()
	lim := emr.NewScaledLimiter(nil, 100)
	apiOptions := append(w.srv.AWSConfig(motoRegion).APIOptions, w.calls.middleware)
	cl, err := emr.NewClients(context.Background(), w.spec, lim, testCredentials, awsconfig.WithAPIOptions(apiOptions))
	if err != nil {
		t.Fatal(err)
	}
	p, err := emr.New(emr.Options{
		Pool: pool, Primary: w.spec, IdleTimeout: 10 * time.Minute, Installation: installation,
		EMR: cl.EMR, S3: cl.S3, Limiter: lim, Log: slog.New(slog.NewTextHandler(t.Output(), nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// callCounter counts the attempts of the SDK calls of the clients it is
// installed in, by operation ("ListSteps", "GetObject"): it sits at the
// end of the SDK's finalize step, after the retries, so that every
// request sent is counted.
type callCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *callCounter) middleware(stack *middleware.Stack) error {
	return stack.Finalize.Add(middleware.FinalizeMiddlewareFunc("CountAttempts",
		func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			c.mu.Lock()
			c.n[middleware.GetOperationName(ctx)]++
			c.mu.Unlock()
			return next.HandleFinalize(ctx, in)
		}), middleware.After)
}

// count is how many requests of op were sent so far.
func (c *callCounter) count(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[op]
}

// create starts a cluster through p and returns its EMR id and Berth's.
func (w *motoWorld) create(t *testing.T, p *emr.Provider, slots int) (id, clusterID string) {
	t.Helper()
	clusterID = providertest.NewClusterID()
	id, err := p.CreateCluster(context.Background(), provider.CreateRequest{ClusterID: clusterID, Pool: "p", Slots: slots})
	if err != nil {
		t.Fatalf("CreateCluster: %v", err)
	}
	return id, clusterID
}

// describe is moto's DescribeCluster, through the raw client.
func (w *motoWorld) describe(t *testing.T, id string) *types.Cluster {
	t.Helper()
	out, err := w.emr.DescribeCluster(context.Background(), &sdkemr.DescribeClusterInput{ClusterId: &id})
	if err != nil {
		t.Fatalf("DescribeCluster(%s): %v", id, err)
	}
	return out.Cluster
}

// steps is every step moto lists on a cluster, through the raw client.
func (w *motoWorld) steps(t *testing.T, id string) []types.StepSummary {
	t.Helper()
	var all []types.StepSummary
	pages := sdkemr.NewListStepsPaginator(w.emr, &sdkemr.ListStepsInput{ClusterId: &id})
	for pages.HasMorePages() {
		out, err := pages.NextPage(context.Background())
		if err != nil {
			t.Fatalf("ListSteps(%s): %v", id, err)
		}
		all = append(all, out.Steps...)
	}
	return all
}

// mainClass is the main class of a cluster's step of a name, as
// AddJobFlowSteps sent it: moto's DescribeJobFlows keeps it.
func (w *motoWorld) mainClass(t *testing.T, id, name string) string {
	t.Helper()
	out, err := w.emr.DescribeJobFlows(context.Background(), &sdkemr.DescribeJobFlowsInput{JobFlowIds: []string{id}})
	if err != nil || len(out.JobFlows) != 1 {
		t.Fatalf("DescribeJobFlows(%s): %+v, %v", id, out, err)
	}
	for _, s := range out.JobFlows[0].Steps {
		if c := s.StepConfig; c != nil && aws.ToString(c.Name) == name && c.HadoopJarStep != nil {
			return aws.ToString(c.HadoopJarStep.MainClass)
		}
	}
	t.Fatalf("DescribeJobFlows(%s) shows no step %s", id, name)
	return ""
}

// RunJobFlow carries Berth's name, tags, slots and the pool's spec, and
// moto's WAITING (at once) is ready.
func TestMotoCreateCluster(t *testing.T) {
	t.Parallel()
	w := newMotoWorld(t)
	p := w.provider(t)
	id, clusterID := w.create(t, p, 3)
	cl := w.describe(t, id)

	var apps, tags []string
	for _, a := range cl.Applications {
		apps = append(apps, aws.ToString(a.Name))
	}
	for _, tg := range cl.Tags {
		tags = append(tags, aws.ToString(tg.Key)+"="+aws.ToString(tg.Value))
	}
	slices.Sort(tags)
	groups, err := w.emr.ListInstanceGroups(context.Background(), &sdkemr.ListInstanceGroupsInput{ClusterId: &id})
	if err != nil {
		t.Fatalf("ListInstanceGroups: %v", err)
	}
	group := map[types.InstanceGroupType]string{}
	for _, g := range groups.InstanceGroups {
		group[g.InstanceGroupType] = fmt.Sprintf("%s x%d %s %s", aws.ToString(g.InstanceType), aws.ToInt32(g.RequestedInstanceCount), g.Market, aws.ToString(g.BidPrice))
	}
	var profile string
	if a := cl.Ec2InstanceAttributes; a != nil {
		profile = aws.ToString(a.IamInstanceProfile)
	}
	for _, tt := range []struct{ field, got, want string }{
		{"Name", aws.ToString(cl.Name), "berth inst-test p " + clusterID},
		{"Tags", strings.Join(tags, ","), "berth:cluster-id=" + clusterID + ",berth:installation=inst-test,berth:pool=p,team=data"},
		{"StepConcurrencyLevel", fmt.Sprint(aws.ToInt32(cl.StepConcurrencyLevel)), "3"},
		// KeepJobFlowAliveWhenNoSteps: true.
		{"AutoTerminate", fmt.Sprint(aws.ToBool(cl.AutoTerminate)), "false"},
		{"ReleaseLabel", aws.ToString(cl.ReleaseLabel), "emr-7.5.0"},
		{"Applications", strings.Join(apps, ","), "Spark,Hadoop"},
		{"ServiceRole", aws.ToString(cl.ServiceRole), "EMR_DefaultRole"},
		{"IamInstanceProfile", profile, "EMR_EC2_DefaultRole"},
		{"LogUri", aws.ToString(cl.LogUri), w.spec.LogURI},
		{"VisibleToAllUsers", fmt.Sprint(aws.ToBool(cl.VisibleToAllUsers)), "true"},
		{"MASTER group", group[types.InstanceGroupTypeMaster], "m5.xlarge x1 ON_DEMAND "},
		{"CORE group", group[types.InstanceGroupTypeCore], "m5.2xlarge x2 SPOT 0.25"},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %q, want %q", tt.field, tt.got, tt.want)
		}
	}
	c, err := p.DescribeCluster(context.Background(), id)
	if err != nil || c.State != berth.ClusterReady {
		t.Errorf("DescribeCluster = %+v, %v; want ready (moto is %s)", c, err, cl.Status.State)
	}
}

// AddJobFlowSteps carries the step as Berth made it, and a restarted
// Berth's SubmitStep of the same name finds it instead of adding another.
func TestMotoSubmitStep(t *testing.T) {
	t.Parallel()
	w := newMotoWorld(t)
	p := w.provider(t)
	cluster, _ := w.create(t, p, 2)
	since := time.Now()
	tests := []struct {
		name           string
		step           berth.Step
		jar, mainClass string
		args           []string
		properties     map[string]string
	}{
		{name: "command", step: berth.Step{Args: []string{"spark-submit", "--deploy-mode", "cluster", "s3://code/etl.py"}},
			jar: "command-runner.jar", args: []string{"spark-submit", "--deploy-mode", "cluster", "s3://code/etl.py"}},
		{name: "jar", step: berth.Step{Jar: "s3://code/app.jar", MainClass: "com.example.Main", Args: []string{"--day", "2024-01-01"},
			Properties: map[string]string{"spark.executor.memory": "4g", "k": "v"}},
			jar: "s3://code/app.jar", mainClass: "com.example.Main", args: []string{"--day", "2024-01-01"},
			properties: map[string]string{"spark.executor.memory": "4g", "k": "v"}},
	}
	reqs := map[string]provider.StepRequest{}
	ids := map[string]string{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := provider.StepRequest{Name: providertest.NewStepName(), Step: tt.step, Since: since}
			id, err := p.SubmitStep(context.Background(), cluster, req)
			if err != nil {
				t.Fatalf("SubmitStep: %v", err)
			}
			reqs[tt.name], ids[tt.name] = req, id
			out, err := w.emr.DescribeStep(context.Background(), &sdkemr.DescribeStepInput{ClusterId: &cluster, StepId: &id})
			if err != nil || out.Step == nil || out.Step.Config == nil {
				t.Fatalf("DescribeStep(%s): %+v, %v", id, out, err)
			}
			s, cfg := out.Step, out.Step.Config
			if aws.ToString(s.Name) != req.Name || s.ActionOnFailure != types.ActionOnFailureContinue {
				t.Errorf("step %q, on failure %s; want %q, CONTINUE", aws.ToString(s.Name), s.ActionOnFailure, req.Name)
			}
			if aws.ToString(cfg.Jar) != tt.jar || !slices.Equal(cfg.Args, tt.args) {
				t.Errorf("moto has jar %q, args %q; want %q, %q", aws.ToString(cfg.Jar), cfg.Args, tt.jar, tt.args)
			}
			if len(cfg.Properties)+len(tt.properties) > 0 && !maps.Equal(cfg.Properties, tt.properties) {
				t.Errorf("moto has properties %v, want %v", cfg.Properties, tt.properties)
			}
			// moto's DescribeStep leaves the main class out (EMR's does
			// not); DescribeJobFlows shows the step as it was sent.
			if mc := w.mainClass(t, cluster, req.Name); mc != tt.mainClass {
				t.Errorf("moto has main class %q, want %q", mc, tt.mainClass)
			}
		})
	}
	var names []string
	for _, s := range w.steps(t, cluster) {
		names = append(names, aws.ToString(s.Name))
	}
	slices.Sort(names)
	var want []string
	for _, r := range reqs {
		want = append(want, r.Name)
	}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Fatalf("moto lists steps %q, want %q", names, want)
	}

	// A restarted Berth submits the step of its record again.
	again, err := w.provider(t).SubmitStep(context.Background(), cluster, reqs["command"])
	if err != nil || again != ids["command"] {
		t.Errorf("SubmitStep after a restart = %q, %v; want %q", again, err, ids["command"])
	}
	if n := len(w.steps(t, cluster)); n != len(tests) {
		t.Errorf("moto lists %d steps after the restart's SubmitStep, want %d", n, len(tests))
	}
}

// A poll of a cluster with more steps than a page lists them all, for a
// call per page of what is active: moto never ends a step, so all are.
func TestMotoListStepsPages(t *testing.T) {
	t.Parallel()
	w := newMotoWorld(t)
	cluster, _ := w.create(t, w.provider(t), 4)
	const n = 60 // moto pages at 50, as EMR does
	var configs []types.StepConfig
	var want []string
	for range n {
		name := providertest.NewStepName()
		want = append(want, name)
		configs = append(configs, types.StepConfig{Name: aws.String(name), ActionOnFailure: types.ActionOnFailureContinue,
			HadoopJarStep: &types.HadoopJarStepConfig{Jar: aws.String("command-runner.jar"), Args: []string{"true"}}})
	}
	if _, err := w.emr.AddJobFlowSteps(context.Background(), &sdkemr.AddJobFlowStepsInput{JobFlowId: &cluster, Steps: configs}); err != nil {
		t.Fatalf("AddJobFlowSteps: %v", err)
	}
	slices.Sort(want)

	// A provider that knows none of them: Berth after a restart.
	p := w.provider(t)
	for poll := range 2 {
		before := w.calls.count("ListSteps")
		steps, err := p.ListSteps(context.Background(), cluster)
		if err != nil {
			t.Fatalf("poll %d: ListSteps: %v", poll, err)
		}
		var got []string
		for _, s := range steps {
			got = append(got, s.Name)
			if s.State.Terminal() {
				t.Errorf("poll %d: step %s is %s; moto ends no step", poll, s.Name, s.State)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("poll %d: %d steps reported, want the %d on the cluster", poll, len(got), n)
		}
		if calls := w.calls.count("ListSteps") - before; calls != 2 {
			t.Errorf("poll %d of %d active steps cost %d ListSteps calls, want 2 (a page per 50)", poll, n, calls)
		}
	}
}

// A cluster moto does not know is lost, not an error.
func TestMotoUnknownClusterIsLost(t *testing.T) {
	t.Parallel()
	w := newMotoWorld(t)
	c, err := w.provider(t).DescribeCluster(context.Background(), "j-NOSUCHCLUSTER1")
	if err != nil || c.State != berth.ClusterLost {
		t.Errorf("DescribeCluster of an unknown cluster = %+v, %v; want lost and no error", c, err)
	}
}

// A terminated cluster is terminated, and terminating it again is no
// error.
func TestMotoTerminateCluster(t *testing.T) {
	t.Parallel()
	w := newMotoWorld(t)
	p := w.provider(t)
	id, _ := w.create(t, p, 1)
	if err := p.TerminateCluster(context.Background(), id); err != nil {
		t.Fatalf("TerminateCluster: %v", err)
	}
	if st := w.describe(t, id).Status.State; st != types.ClusterStateTerminated {
		t.Errorf("moto says the cluster is %s, want TERMINATED", st)
	}
	c, err := p.DescribeCluster(context.Background(), id)
	if err != nil || c.State != berth.ClusterTerminated {
		t.Errorf("DescribeCluster = %+v, %v; want terminated", c, err)
	}
	if err := p.TerminateCluster(context.Background(), id); err != nil {
		t.Errorf("TerminateCluster of a terminated cluster: %v", err)
	}
}

// moto answers CancelSteps with a 500 whose body is no EMR error: the
// provider says so as a transient failure, after the few attempts the SDK
// makes of a server error, and does not hang.
func TestMotoCancelStepServerError(t *testing.T) {
	t.Parallel()
	w := newMotoWorld(t)
	p := w.provider(t)
	cluster, _ := w.create(t, p, 1)
	step, _ := submit(t, p, cluster, "true")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := p.CancelStep(ctx, cluster, step)
	var pe *provider.Error
	if !errors.As(err, &pe) || pe.Class != provider.ClassTransient || ctx.Err() != nil {
		t.Fatalf("CancelStep: %v; want a transient provider.Error before the deadline", err)
	}
	if !strings.Contains(pe.Message, "CancelSteps") || !strings.Contains(pe.Message, "500") {
		t.Errorf("message %q does not say CancelSteps got a server error (500)", pe.Message)
	}
	if n := w.calls.count("CancelSteps"); n < 1 || n > 4 {
		t.Errorf("CancelSteps was sent %d times, want 1 to 4 (the SDK's attempts)", n)
	}
}

// Step logs are read from the cluster's log URI in S3 and unzipped;
// before EMR writes them the answer says where they will be; a bucket
// that is not there is a clear error.
func TestMotoStepLogs(t *testing.T) {
	t.Parallel()
	w := newMotoWorld(t)
	p := w.provider(t)
	cluster, _ := w.create(t, p, 1)
	step, _ := submit(t, p, cluster, "true")
	where := fmt.Sprintf("s3://%s/emr/%s/steps/%s/", w.bucket, cluster, step)

	t.Run("no bucket", func(t *testing.T) {
		_, err := p.StepLogs(context.Background(), cluster, step)
		if !errors.Is(err, berth.ErrUnavailable) || !strings.Contains(berth.Public(err), "s3://"+w.bucket+"/") || !strings.Contains(berth.Public(err), "bucket") {
			t.Errorf("StepLogs with no bucket: %v (public %q); want unavailable, naming the bucket", err, berth.Public(err))
		}
	})
	if _, err := w.s3.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: &w.bucket}); err != nil {
		t.Fatalf("CreateBucket: %v", err)
	}
	t.Run("not written yet", func(t *testing.T) {
		logs, err := p.StepLogs(context.Background(), cluster, step)
		if err != nil || logs.Location != where || logs.Stdout != "" || !strings.Contains(logs.Stderr, where) {
			t.Errorf("StepLogs = %+v, %v; want none, naming %s", logs, err, where)
		}
	})
	t.Run("written", func(t *testing.T) {
		for name, text := range map[string]string{"stdout.gz": "to-stdout\n", "stderr.gz": "to-stderr\n"} {
			key := strings.TrimPrefix(where, "s3://"+w.bucket+"/") + name
			if _, err := w.s3.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &w.bucket, Key: &key, Body: bytes.NewReader(gz(t, text)),
				ContentType: aws.String("application/gzip"), ContentEncoding: aws.String("gzip")}); err != nil {
				t.Fatalf("PutObject(%s): %v", key, err)
			}
		}
		logs, err := p.StepLogs(context.Background(), cluster, step)
		if err != nil || logs.Stdout != "to-stdout\n" || logs.Stderr != "to-stderr\n" || logs.Location != where {
			t.Errorf("StepLogs = %+v, %v; want both logs unzipped, from %s", logs, err, where)
		}
	})
}

// A provider finds and lists the clusters another provider value of its
// installation and pool started, and not those of another installation.
func TestMotoFindAndListClusters(t *testing.T) {
	t.Parallel()
	w := newMotoWorld(t)
	mine, mineID := w.create(t, w.provider(t), 1)
	_, otherID := w.create(t, w.providerOf(t, "inst-other", "p"), 1)

	p := w.provider(t)
	if id, ok, err := p.FindCluster(context.Background(), mineID); err != nil || !ok || id != mine {
		t.Errorf("FindCluster(%s) = %q, %v, %v; want %q", mineID, id, ok, err, mine)
	}
	if id, ok, err := p.FindCluster(context.Background(), otherID); err != nil || ok {
		t.Errorf("FindCluster of another installation's cluster = %q, %v, %v; want none", id, ok, err)
	}
	listed, err := p.ListClusters(context.Background())
	if err != nil {
		t.Fatalf("ListClusters: %v", err)
	}
	if len(listed) != 1 || listed[0].ID != mine || listed[0].ClusterID != mineID || listed[0].Since.IsZero() {
		t.Errorf("ListClusters = %+v, want only %s (%s), with its creation time", listed, mine, mineID)
	}
}
