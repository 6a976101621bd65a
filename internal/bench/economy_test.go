package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	sdkemr "github.com/aws/aws-sdk-go-v2/service/emr"
	"github.com/aws/aws-sdk-go-v2/service/emr/types"
	"github.com/aws/smithy-go"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/client"
	"github.com/berthhq/berth/internal/config"
	"github.com/berthhq/berth/internal/emulator"
	"github.com/berthhq/berth/internal/server"
)

// economy is one size of the EMR API economy comparison. Its times are
// EMR's and Airflow's, as they would pass on AWS; the run divides every
// one of them by Scale, and multiplies every API rate by it (the
// emulator's buckets and Berth's limiter), so that the calls each side
// makes per job are those of the unscaled run, in 1/Scale of its time.
type economy struct {
	Jobs, Clusters, Slots int
	Scale                 float64
	// Boot is how long a cluster is STARTING, Bootstrap BOOTSTRAPPING,
	// Terminate TERMINATING; Step how long each job's one step runs.
	Boot, Bootstrap, Terminate, Step time.Duration
	// Poke is Airflow's poke_interval (EmrStepSensor and EmrJobFlowSensor),
	// and the retry_delay of its failed task tries.
	Poke time.Duration
	// PollBase is Berth's emr.poll_interval, IdleTimeout and BootTimeout
	// its pool's.
	PollBase, IdleTimeout, BootTimeout time.Duration
}

// fullEconomy is the size BENCHMARKS.md records: 1,000 one-step jobs of 5
// minutes on up to 20 clusters of 8 slots, at 40 times EMR's pace.
var fullEconomy = economy{
	Jobs: 1000, Clusters: 20, Slots: 8, Scale: 40,
	Boot: 5 * time.Minute, Bootstrap: 2 * time.Minute, Terminate: time.Minute, Step: 5 * time.Minute,
	Poke:     time.Minute,
	PollBase: 15 * time.Second, IdleTimeout: 10 * time.Minute, BootTimeout: 30 * time.Minute,
}

// d is an EMR time in the run's time.
func (e economy) d(t time.Duration) time.Duration {
	return time.Duration(float64(t) / e.Scale)
}

// deadline bounds each side's run: hours of EMR time, never under a
// minute of the run's.
func (e economy) deadline() time.Duration { return max(e.d(4*time.Hour), time.Minute) }

// sleepArgs is each job's step: a process that runs Step, scaled.
func (e economy) sleepArgs() []string {
	return []string{"sleep", strconv.FormatFloat(e.d(e.Step).Seconds(), 'f', -1, 64)}
}

// outcome is what one side cost: EMR calls by operation and throttling
// errors as the emulator counted them, and what the side saw itself.
type outcome struct {
	Succeeded int
	Clusters  int
	Calls     map[string]int
	Throttled int
	// Failed counts, by operation, the calls still throttled after the
	// client's own retries: each fails an Airflow task try. Berth's
	// equivalent is Attempts above one per job.
	Failed   map[string]int
	Attempts int
	Wall     time.Duration
}

func (o outcome) total() int {
	n := 0
	for _, c := range o.Calls {
		n += c
	}
	return n
}

func (o outcome) failed() int {
	n := 0
	for _, c := range o.Failed {
		n += c
	}
	return n
}

func (o outcome) perJob(n int) float64 { return float64(n) / float64(o.Succeeded) }

// newEconomyEmulator is an EMR emulator on the wall clock behind a
// loopback HTTP server, its times and throttling scaled. Both sides get
// one of their own with the same options. Cleanup checks that nothing is
// left running, then closes it.
func newEconomyEmulator(tb testing.TB, e economy) (*emulator.Emulator, string) {
	tb.Helper()
	emu := emulator.New(emulator.Options{
		BootTime: e.d(e.Boot), BootstrapTime: e.d(e.Bootstrap), TerminateTime: e.d(e.Terminate),
		// Clusters' auto-termination (idle_timeout plus Berth's 10-minute
		// margin) is a safety net that never acts in the run; it is not
		// scaled.
		Throttle: true, ThrottleScale: e.Scale,
		WorkDir: tb.TempDir(), Seed: 1,
	})
	srv := httptest.NewServer(emu)
	tb.Cleanup(func() {
		for _, c := range emu.Snapshot() {
			if c.State != "TERMINATED" {
				tb.Errorf("cleanup: EMR cluster %s is %s", c.ID, c.State)
			}
			for _, s := range c.Steps {
				if s.State == "PENDING" || s.State == "RUNNING" {
					tb.Errorf("cleanup: step %s on %s is %s", s.Name, c.ID, s.State)
				}
			}
		}
		if err := emu.Close(); err != nil {
			tb.Errorf("close emulator: %v", err)
		}
		srv.Close()
	})
	return emu, srv.URL
}

// isolateAWS gives the AWS SDK static credentials and empty shared
// files, so that nothing of the machine's AWS configuration is read and
// no call goes anywhere but the emulator.
func isolateAWS(tb testing.TB) {
	tb.Helper()
	dir := tb.TempDir()
	for _, name := range []string{"config", "credentials"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "AKIDBENCH", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_SESSION_TOKEN": "",
		"AWS_CONFIG_FILE": filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_PROFILE": "", "AWS_DEFAULT_PROFILE": "", "AWS_ENDPOINT_URL": "", "AWS_ENDPOINT_URL_EMR": "",
		"AWS_EC2_METADATA_DISABLED": "true",
	} {
		tb.Setenv(k, v)
	}
}

// runBerth runs the jobs through a real Berth server whose one EMR pool
// is on its own emulator, from the first submission until every job has
// ended and every cluster is terminated.
func runBerth(tb testing.TB, e economy) outcome {
	tb.Helper()
	isolateAWS(tb)
	emu, url := newEconomyEmulator(tb, e)
	dir := tb.TempDir()
	cfg, err := config.Parse(fmt.Appendf(nil, `
listen: 127.0.0.1:0
store: sqlite://%s
pools:
  - name: %s
    provider: emr
    slots: %d
    max_clusters: %d
    idle_timeout: %s
    boot_timeout: %s
    price_per_hour: 1.0
    emr:
      region: us-east-1
      endpoint: %s
      release_label: emr-7.5.0
      applications: [Spark]
      poll_interval: %s
      instance_groups:
        - {role: MASTER, instance_type: m5.xlarge, count: 1, market: ON_DEMAND}
        - {role: CORE, instance_type: r5.2xlarge, count: 4, market: ON_DEMAND}
`, filepath.ToSlash(filepath.Join(dir, "berth.db")), poolName, e.Slots, e.Clusters,
		e.d(e.IdleTimeout), e.d(e.BootTimeout), url, e.d(e.PollBase)))
	if err != nil {
		tb.Fatalf("parse configuration: %v", err)
	}
	log := slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: benchLog}))
	srv, err := server.New(context.Background(), cfg, server.Options{Log: log, EMRRateScale: e.Scale})
	if err != nil {
		tb.Fatalf("new server: %v", err)
	}
	h := newHarness(tb, srv)
	// The emulator's own cleanup checks what is left on EMR.
	h.check = func(context.Context) error { return nil }
	ctx, cancel := context.WithTimeout(tb.Context(), e.deadline())
	defer cancel()

	t0 := time.Now()
	keys := make(chan int)
	errs := make(chan error, submitters)
	var wg sync.WaitGroup
	for range submitters {
		wg.Go(func() {
			for i := range keys {
				if _, _, err := h.c.Submit(ctx, job(fmt.Sprintf("economy/%d", i), e.sleepArgs()...)); err != nil {
					errs <- fmt.Errorf("submit job %d: %w", i, err)
					return
				}
			}
		})
	}
	go func() {
		defer close(keys)
		for i := range e.Jobs {
			select {
			case keys <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
	if err := waitJobsEnded(ctx, h.c, e.Jobs); err != nil {
		tb.Fatalf("waiting for %d jobs: %v", e.Jobs, err)
	}
	out := outcome{Wall: time.Since(t0)}
	for j, err := range allJobs(ctx, h.c) {
		if err != nil {
			tb.Fatal(err)
		}
		if j.State != berth.JobSucceeded {
			tb.Fatalf("job %s is %s, want succeeded: %+v", j.ID, j.State, j.Attempts)
		}
		out.Succeeded++
		out.Attempts += len(j.Attempts)
	}
	if out.Succeeded != e.Jobs {
		tb.Fatalf("%d jobs succeeded, want %d", out.Succeeded, e.Jobs)
	}
	// The clusters' end is part of the work's cost: Airflow's side ends
	// its clusters too.
	if err := h.drain(ctx); err != nil {
		tb.Fatal(err)
	}
	out.Clusters, out.Calls, out.Throttled = len(emu.Snapshot()), emu.Calls(), emu.Throttled()
	return out
}

// waitJobsEnded waits until n jobs of the pool have ended. It counts the
// jobs themselves: the pool's counts lag a submission until the loop has
// picked it up, so "nothing queued" right after the submissions proves
// nothing.
func waitJobsEnded(ctx context.Context, c *client.Client, n int) error {
	for {
		ended := 0
		for j, err := range allJobs(ctx, c) {
			if err != nil {
				return err
			}
			if j.State.Terminal() {
				ended++
			}
		}
		if ended >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d jobs ended: %w", ended, n, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// allJobs lists every job of the pool, page by page.
func allJobs(ctx context.Context, c *client.Client) func(yield func(berth.Job, error) bool) {
	return func(yield func(berth.Job, error) bool) {
		cursor := ""
		for {
			jobs, next, err := c.Jobs(ctx, client.JobsQuery{Pool: poolName, Limit: 1000, Cursor: cursor})
			if err != nil {
				yield(berth.Job{}, err)
				return
			}
			for _, j := range jobs {
				if !yield(j, nil) {
					return
				}
			}
			if next == "" {
				return
			}
			cursor = next
		}
	}
}

// botoAttempts and botoBase are botocore's legacy retry mode, the default
// of boto3 and so of Airflow's AWS hooks: five attempts, the n-th retry
// of a throttled call after rand × 2^(n-1) seconds.
const (
	botoAttempts = 5
	botoBase     = time.Second
)

// airflow is the usual Airflow pattern on EMR, against its own emulator:
// EmrCreateJobFlowOperator and EmrJobFlowSensor per cluster, then per job
// one EmrAddStepsOperator (AddJobFlowSteps of one step) and one
// EmrStepSensor (DescribeStep at once, then every poke interval until the
// step ends), on as many task slots as Berth's pool has (clusters ×
// slots), and EmrTerminateJobFlowOperator per cluster at the end.
type airflow struct {
	e   economy
	emr *sdkemr.Client

	mu     sync.Mutex
	failed map[string]int
}

func newAirflow(e economy, url string) *airflow {
	// A connection per task slot, as Airflow's workers would hold: the
	// SDK's default keeps 10 per host.
	hc := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 512, 512
	})
	cfg := aws.Config{
		Region:       "us-east-1",
		Credentials:  aws.CredentialsProviderFunc(staticCredentials),
		BaseEndpoint: aws.String(url),
		HTTPClient:   hc,
		// The retries are botocore's, made by call, so that every attempt
		// is seen.
		Retryer: func() aws.Retryer { return aws.NopRetryer{} },
	}
	return &airflow{e: e, emr: sdkemr.NewFromConfig(cfg), failed: map[string]int{}}
}

func staticCredentials(context.Context) (aws.Credentials, error) {
	return aws.Credentials{AccessKeyID: "AKIDBENCH", SecretAccessKey: "secret"}, nil
}

// throttled reports whether err is EMR's ThrottlingException.
func throttled(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "ThrottlingException"
}

// call makes one boto3 call: retried by botocore while throttled, up to
// botoAttempts. A call still throttled after them is a failed task try,
// counted, and returned as errTry; any other error ends the run.
func (a *airflow) call(ctx context.Context, op string, fn func(context.Context) error) error {
	for n := 1; ; n++ {
		err := fn(ctx)
		switch {
		case err == nil:
			return nil
		case !throttled(err):
			return fmt.Errorf("%s: %w", op, err)
		case n == botoAttempts:
			a.mu.Lock()
			a.failed[op]++
			a.mu.Unlock()
			return errTry
		}
		backoff := time.Duration(rand.Float64() * float64(botoBase<<(n-1)))
		if err := sleep(ctx, a.e.d(backoff)); err != nil {
			return err
		}
	}
}

// errTry is a failed Airflow task try: the task retries after its
// retry_delay (Poke), a sensor by poking again.
var errTry = errors.New("task try failed: throttled")

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// task runs one operator's call until a try succeeds.
func (a *airflow) task(ctx context.Context, op string, fn func(context.Context) error) error {
	for {
		err := a.call(ctx, op, fn)
		if !errors.Is(err, errTry) {
			return err
		}
		if err := sleep(ctx, a.e.d(a.e.Poke)); err != nil {
			return err
		}
	}
}

// cluster starts one cluster and waits, as EmrJobFlowSensor does, until
// it is WAITING.
func (a *airflow) cluster(ctx context.Context, i int) (string, error) {
	in := &sdkemr.RunJobFlowInput{
		Name:                 aws.String(fmt.Sprintf("airflow-%d", i)),
		ReleaseLabel:         aws.String("emr-7.5.0"),
		ServiceRole:          aws.String("EMR_DefaultRole"),
		JobFlowRole:          aws.String("EMR_EC2_DefaultRole"),
		StepConcurrencyLevel: aws.Int32(int32(a.e.Slots)),
		Applications:         []types.Application{{Name: aws.String("Spark")}},
		Instances: &types.JobFlowInstancesConfig{
			KeepJobFlowAliveWhenNoSteps: aws.Bool(true),
			InstanceGroups: []types.InstanceGroupConfig{
				{InstanceRole: types.InstanceRoleTypeMaster, InstanceType: aws.String("m5.xlarge"), InstanceCount: aws.Int32(1), Market: types.MarketTypeOnDemand},
				{InstanceRole: types.InstanceRoleTypeCore, InstanceType: aws.String("r5.2xlarge"), InstanceCount: aws.Int32(4), Market: types.MarketTypeOnDemand},
			},
		},
	}
	var id string
	if err := a.task(ctx, "RunJobFlow", func(ctx context.Context) error {
		out, err := a.emr.RunJobFlow(ctx, in)
		if err == nil {
			id = aws.ToString(out.JobFlowId)
		}
		return err
	}); err != nil {
		return "", err
	}
	for {
		var state types.ClusterState
		err := a.call(ctx, "DescribeCluster", func(ctx context.Context) error {
			out, err := a.emr.DescribeCluster(ctx, &sdkemr.DescribeClusterInput{ClusterId: aws.String(id)})
			if err == nil {
				state = out.Cluster.Status.State
			}
			return err
		})
		switch {
		case err != nil && !errors.Is(err, errTry):
			return "", err
		case state == types.ClusterStateWaiting:
			return id, nil
		case state != "" && state != types.ClusterStateStarting && state != types.ClusterStateBootstrapping:
			return "", fmt.Errorf("cluster %s is %s", id, state)
		}
		if err := sleep(ctx, a.e.d(a.e.Poke)); err != nil {
			return "", err
		}
	}
}

// job adds one step to the cluster and senses it until it ends.
func (a *airflow) job(ctx context.Context, clusterID string, i int) error {
	in := &sdkemr.AddJobFlowStepsInput{JobFlowId: aws.String(clusterID), Steps: []types.StepConfig{{
		Name:            aws.String(fmt.Sprintf("economy-%d", i)),
		ActionOnFailure: types.ActionOnFailureContinue,
		HadoopJarStep:   &types.HadoopJarStepConfig{Jar: aws.String("command-runner.jar"), Args: a.e.sleepArgs()},
	}}}
	var stepID string
	if err := a.task(ctx, "AddJobFlowSteps", func(ctx context.Context) error {
		out, err := a.emr.AddJobFlowSteps(ctx, in)
		if err == nil {
			stepID = out.StepIds[0]
		}
		return err
	}); err != nil {
		return err
	}
	for {
		var state types.StepState
		err := a.call(ctx, "DescribeStep", func(ctx context.Context) error {
			out, err := a.emr.DescribeStep(ctx, &sdkemr.DescribeStepInput{ClusterId: aws.String(clusterID), StepId: aws.String(stepID)})
			if err == nil {
				state = out.Step.Status.State
			}
			return err
		})
		switch {
		case err != nil && !errors.Is(err, errTry):
			return err
		case state == types.StepStateCompleted:
			return nil
		case state == types.StepStateFailed || state == types.StepStateCancelled || state == types.StepStateInterrupted:
			return fmt.Errorf("step %s on %s is %s", stepID, clusterID, state)
		}
		if err := sleep(ctx, a.e.d(a.e.Poke)); err != nil {
			return err
		}
	}
}

// runAirflow runs the jobs the Airflow way on its own emulator, from the
// first RunJobFlow until every job's sensor has seen it succeed and every
// cluster is told to terminate.
func runAirflow(tb testing.TB, e economy) outcome {
	tb.Helper()
	emu, url := newEconomyEmulator(tb, e)
	a := newAirflow(e, url)
	ctx, cancel := context.WithTimeout(tb.Context(), e.deadline())
	defer cancel()

	t0 := time.Now()
	jobs := make(chan int, e.Jobs)
	for i := range e.Jobs {
		jobs <- i
	}
	close(jobs)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		ids     []string
		done    int
		firstEr error
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstEr == nil {
			firstEr = err
			cancel()
		}
	}
	for c := range e.Clusters {
		wg.Go(func() {
			id, err := a.cluster(ctx, c)
			if err != nil {
				fail(err)
				return
			}
			mu.Lock()
			ids = append(ids, id)
			mu.Unlock()
			var slots sync.WaitGroup
			for range e.Slots {
				slots.Go(func() {
					for i := range jobs {
						if err := a.job(ctx, id, i); err != nil {
							fail(err)
							return
						}
						mu.Lock()
						done++
						mu.Unlock()
					}
				})
			}
			slots.Wait()
		})
	}
	wg.Wait()
	if firstEr != nil {
		tb.Fatalf("airflow: %v", firstEr)
	}
	out := outcome{Wall: time.Since(t0), Succeeded: done, Attempts: done}
	if done != e.Jobs {
		tb.Fatalf("airflow: %d jobs succeeded, want %d", done, e.Jobs)
	}
	for _, id := range ids {
		if err := a.task(ctx, "TerminateJobFlows", func(ctx context.Context) error {
			_, err := a.emr.TerminateJobFlows(ctx, &sdkemr.TerminateJobFlowsInput{JobFlowIds: []string{id}})
			return err
		}); err != nil {
			tb.Fatal(err)
		}
	}
	out.Clusters, out.Calls, out.Throttled, out.Failed = len(emu.Snapshot()), emu.Calls(), emu.Throttled(), a.failed
	// Calls are counted; what is left is for the emulator's cleanup to
	// find ended, without calls of the API.
	waitTerminated(tb, emu, e)
	return out
}

// waitTerminated waits until every cluster of emu has ended.
func waitTerminated(tb testing.TB, emu *emulator.Emulator, e economy) {
	tb.Helper()
	end := time.Now().Add(e.d(e.Terminate) + time.Minute)
	for {
		live := 0
		for _, c := range emu.Snapshot() {
			if c.State != "TERMINATED" {
				live++
			}
		}
		if live == 0 {
			return
		}
		if time.Now().After(end) {
			tb.Fatalf("%d EMR clusters still live after their termination", live)
		}
		<-time.After(tick)
	}
}

// report logs both sides' costs as a table.
func report(tb testing.TB, e economy, b, a outcome) {
	tb.Helper()
	ops := map[string]bool{}
	for op := range maps.Keys(b.Calls) {
		ops[op] = true
	}
	for op := range maps.Keys(a.Calls) {
		ops[op] = true
	}
	var s strings.Builder
	fmt.Fprintf(&s, "%d one-step jobs of %s on up to %d clusters × %d slots, times ÷%g\n", e.Jobs, e.Step, e.Clusters, e.Slots, e.Scale)
	fmt.Fprintf(&s, "%-20s %12s %12s\n", "calls per job", "berth", "airflow")
	for _, op := range slices.Sorted(maps.Keys(ops)) {
		fmt.Fprintf(&s, "%-20s %12.3f %12.3f\n", op, b.perJob(b.Calls[op]), a.perJob(a.Calls[op]))
	}
	fmt.Fprintf(&s, "%-20s %12.3f %12.3f\n", "total", b.perJob(b.total()), a.perJob(a.total()))
	fmt.Fprintf(&s, "%-20s %12d %12d\n", "throttled", b.Throttled, a.Throttled)
	fmt.Fprintf(&s, "%-20s %12d %12d  %v\n", "failed tries", b.Attempts-b.Succeeded, a.failed(), a.Failed)
	fmt.Fprintf(&s, "%-20s %12d %12d\n", "clusters", b.Clusters, a.Clusters)
	fmt.Fprintf(&s, "%-20s %12s %12s  (EMR time: %s, %s)\n", "wall", b.Wall.Round(time.Millisecond), a.Wall.Round(time.Millisecond),
		time.Duration(float64(b.Wall)*e.Scale).Round(time.Second), time.Duration(float64(a.Wall)*e.Scale).Round(time.Second))
	tb.Log("\n" + s.String())
}

// smallEconomy runs in the normal test suite, as a check of the
// comparison's harness rather than of its numbers: 20 jobs of a minute
// on 2 clusters, 100 times EMR's pace. Berth polls each cluster every
// minute, as often as a sensor pokes its step: a fleet of two leaves its
// default of 15 s unstretched, and the comparison would measure that
// choice rather than the harness.
var smallEconomy = economy{
	Jobs: 20, Clusters: 2, Slots: 8, Scale: 100,
	Boot: time.Minute, Bootstrap: 30 * time.Second, Terminate: 30 * time.Second, Step: time.Minute,
	Poke:     time.Minute,
	PollBase: time.Minute, IdleTimeout: 10 * time.Minute, BootTimeout: 30 * time.Minute,
}

// TestEMRAPIEconomy runs the comparison small: every job succeeds on both
// sides, and Berth spends fewer EMR calls per job than the Airflow
// pattern and is throttled less.
func TestEMRAPIEconomy(t *testing.T) {
	e := smallEconomy
	b := runBerth(t, e)
	a := runAirflow(t, e)
	report(t, e, b, a)
	if b.Clusters < 1 || b.Clusters > e.Clusters {
		t.Errorf("berth started %d clusters, want 1..%d", b.Clusters, e.Clusters)
	}
	if a.Clusters != e.Clusters {
		t.Errorf("airflow started %d clusters, want %d", a.Clusters, e.Clusters)
	}
	if b.Calls["AddJobFlowSteps"] < e.Jobs || a.Calls["AddJobFlowSteps"] < e.Jobs || a.Calls["DescribeStep"] < e.Jobs {
		t.Errorf("calls: berth %v, airflow %v; want at least an AddJobFlowSteps per job on both, a DescribeStep per job on Airflow's", b.Calls, a.Calls)
	}
	// Berth's limiter keeps EMR's buckets, but not to the millisecond: a
	// call that reaches EMR later than Berth sent it, while EMR's bucket
	// is full, loses EMR that delay's refill, and a burst that spends
	// Berth's bucket to its last token then finds EMR's short. At 100
	// times EMR's rates the account's bucket earns a token every 2 ms,
	// so Berth is throttled a few times (and retries).
	if b.Throttled >= a.Throttled {
		t.Errorf("berth was throttled %d times, airflow %d; want berth less", b.Throttled, a.Throttled)
	}
	if bj, aj := b.perJob(b.total()), a.perJob(a.total()); bj >= aj {
		t.Errorf("berth spent %.2f EMR calls per job, airflow %.2f; want berth fewer", bj, aj)
	}
}

// economyScale overrides fullEconomy's Scale: a run at another scale
// shows what the compression itself changes.
var economyScale = flag.Float64("economy.scale", fullEconomy.Scale, "BenchmarkEMRAPIEconomy: the factor dividing EMR's times and multiplying its rates")

// BenchmarkEMRAPIEconomy runs 1,000 one-step jobs through Berth and
// through the usual Airflow pattern, each on its own throttling EMR
// emulator, and reports the EMR calls each spent per completed job. It
// takes a few minutes; run it with -benchtime=1x.
func BenchmarkEMRAPIEconomy(b *testing.B) {
	e := fullEconomy
	if !(*economyScale > 0) {
		b.Fatalf("-economy.scale %g: must be above 0", *economyScale)
	}
	e.Scale = *economyScale
	var berthSide, airflowSide []outcome
	for b.Loop() {
		berthSide = append(berthSide, runBerth(b, e))
		airflowSide = append(airflowSide, runAirflow(b, e))
	}
	bo, ao := berthSide[len(berthSide)-1], airflowSide[len(airflowSide)-1]
	report(b, e, bo, ao)
	for _, side := range []struct {
		name string
		o    outcome
	}{{"berth", bo}, {"airflow", ao}} {
		o := side.o
		b.ReportMetric(o.perJob(o.total()), side.name+"-calls/job")
		for _, op := range []string{"AddJobFlowSteps", "DescribeStep", "ListSteps", "DescribeCluster"} {
			if o.Calls[op] > 0 {
				b.ReportMetric(o.perJob(o.Calls[op]), side.name+"-"+op+"/job")
			}
		}
		b.ReportMetric(float64(o.Throttled), side.name+"-throttled")
		b.ReportMetric(float64(o.Clusters), side.name+"-clusters")
		b.ReportMetric(o.Wall.Seconds(), side.name+"-wall-s")
	}
	b.ReportMetric(float64(ao.failed()), "airflow-failed-tries")
	b.ReportMetric(float64(bo.Attempts-bo.Succeeded), "berth-retried-jobs")
}
