package server

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	sdkemr "github.com/aws/aws-sdk-go-v2/service/emr"
	"github.com/aws/aws-sdk-go-v2/service/emr/types"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/client"
	"github.com/berthhq/berth/internal/config"
	"github.com/berthhq/berth/internal/testenv/moto"
	"github.com/berthhq/berth/internal/wait"
)

// motoDeadline bounds each wait on the server and moto. A poll of one
// cluster comes every 2.5 s at EMR's default limits, whatever
// poll_interval says.
const motoDeadline = 20 * time.Second

// isolateAWS gives the server's AWS SDK, which reads the default chain,
// static test credentials and nothing of the machine's own configuration.
// It sets the environment, so its tests cannot run in parallel.
func isolateAWS(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"config", "credentials"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "",
		"AWS_CONFIG_FILE": filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_PROFILE": "", "AWS_DEFAULT_PROFILE": "", "AWS_REGION": "", "AWS_DEFAULT_REGION": "",
		"AWS_ENDPOINT_URL": "", "AWS_ENDPOINT_URL_EMR": "", "AWS_ENDPOINT_URL_S3": "", "AWS_CA_BUNDLE": "",
		"AWS_ROLE_ARN": "", "AWS_WEB_IDENTITY_TOKEN_FILE": "", "AWS_EC2_METADATA_DISABLED": "true",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI": "", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "",
	} {
		t.Setenv(k, v)
	}
}

// emrCalls is a proxy in front of moto that counts the EMR calls passing
// through it, by operation: the server makes its SDK clients itself, so
// its calls are counted on their way.
type emrCalls struct {
	url string
	mu  sync.Mutex
	n   map[string]int
}

func newEMRCalls(t *testing.T, to string) *emrCalls {
	t.Helper()
	u, err := url.Parse(to)
	if err != nil {
		t.Fatal(err)
	}
	c := &emrCalls{n: map[string]int{}}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), "ElasticMapReduce."); ok {
			c.mu.Lock()
			c.n[op]++
			c.mu.Unlock()
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c.url = srv.URL
	return c
}

func (c *emrCalls) count(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[op]
}

// emrConfig is a server with one EMR pool whose clusters are in moto,
// behind endpoint.
func emrConfig(t *testing.T, dir, endpoint string) *config.Config {
	t.Helper()
	cfg, err := config.Parse(fmt.Appendf(nil, `
listen: 127.0.0.1:0
store: sqlite://%s/berth.db
pools:
  - name: etl
    provider: emr
    slots: 2
    max_clusters: 2
    idle_timeout: 1h
    emr:
      region: us-east-1
      endpoint: %s
      release_label: emr-7.5.0
      applications: [Spark]
      service_role: EMR_DefaultRole
      job_flow_role: EMR_EC2_DefaultRole
      log_uri: s3://berth-logs/emr/
      instance_groups: [{role: MASTER, instance_type: m5.xlarge, count: 1}]
      tags: {team: data}
      poll_interval: 200ms
`, filepath.ToSlash(dir), endpoint))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startServer starts a server of cfg.
func startServer(t *testing.T, cfg *config.Config) *Server {
	t.Helper()
	srv, err := New(context.Background(), cfg, testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return srv
}

// motoCluster is one of moto's clusters and its steps.
type motoCluster struct {
	summary types.ClusterSummary
	steps   []types.StepSummary
}

// motoClusters is every cluster moto has, ended ones too, with its steps.
func motoClusters(t *testing.T, c *sdkemr.Client) []motoCluster {
	t.Helper()
	ctx := context.Background()
	var out []motoCluster
	pages := sdkemr.NewListClustersPaginator(c, &sdkemr.ListClustersInput{})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			t.Fatalf("moto ListClusters: %v", err)
		}
		for _, cs := range page.Clusters {
			mc := motoCluster{summary: cs}
			steps := sdkemr.NewListStepsPaginator(c, &sdkemr.ListStepsInput{ClusterId: cs.Id})
			for steps.HasMorePages() {
				sp, err := steps.NextPage(ctx)
				if err != nil {
					t.Fatalf("moto ListSteps(%s): %v", aws.ToString(cs.Id), err)
				}
				mc.steps = append(mc.steps, sp.Steps...)
			}
			out = append(out, mc)
		}
	}
	return out
}

// An EMR pool in a real server against moto: the job's cluster is started
// named and tagged for the pool, with the job's step on it; a restarted
// server over the same store adopts the cluster instead of starting
// another, and the job runs on where it was (moto never ends a step).
func TestServerAdoptsItsEMRClusterAfterARestart(t *testing.T) {
	// The server's SDK client cannot send a Shared handle's account
	// header: a moto of the test's own.
	m := moto.Start(t)
	isolateAWS(t)
	calls := newEMRCalls(t, m.URL())
	raw := sdkemr.NewFromConfig(m.AWSConfig("us-east-1"))
	cfg := emrConfig(t, t.TempDir(), calls.url)
	ctx := context.Background()

	first := startServer(t, cfg)
	firstUp := true
	t.Cleanup(func() {
		if firstUp {
			_ = first.Stop()
		}
	})
	job, _, err := client.New(first.URL(), "", nil).Submit(ctx, berth.JobSpec{Pool: "etl", Steps: []berth.Step{
		{Name: "transform", Args: []string{"spark-submit", "s3://code/transform.py"}},
	}})
	if err != nil {
		t.Fatalf("submit: %v", err)
	}

	// moto shows the cluster and the step, and Berth has recorded both.
	var cluster motoCluster
	var stepID string
	wait.For(t, motoDeadline, "moto to show the job's step on a cluster of pool etl, and Berth to record it", func() bool {
		cs := motoClusters(t, raw)
		if len(cs) != 1 || len(cs[0].steps) != 1 {
			return false
		}
		cluster = cs[0]
		stepID = aws.ToString(cluster.steps[0].Id)
		j, err := first.Service().Job(ctx, job.ID)
		if err != nil {
			t.Fatal(err)
		}
		job = j
		return job.State == berth.JobRunning && len(job.Attempts) == 1 && job.Attempts[0].Steps[0].ProviderID == stepID
	})
	emrID := aws.ToString(cluster.summary.Id)
	name := strings.Fields(aws.ToString(cluster.summary.Name))
	if len(name) != 4 || name[0] != "berth" || name[2] != "etl" || name[3] != job.ClusterID {
		t.Fatalf("moto's cluster is named %q, want berth <installation> etl %s", aws.ToString(cluster.summary.Name), job.ClusterID)
	}
	installation := name[1]
	d, err := raw.DescribeCluster(ctx, &sdkemr.DescribeClusterInput{ClusterId: &emrID})
	if err != nil {
		t.Fatalf("moto DescribeCluster: %v", err)
	}
	tags := map[string]string{}
	for _, tg := range d.Cluster.Tags {
		tags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	for k, want := range map[string]string{"berth:cluster-id": job.ClusterID, "berth:pool": "etl", "berth:installation": installation, "team": "data"} {
		if tags[k] != want {
			t.Errorf("moto's cluster has tag %s=%q, want %q", k, tags[k], want)
		}
	}
	if jobID, attempt, _, ok := berth.ParseStepName(aws.ToString(cluster.steps[0].Name)); !ok || jobID != job.ID || attempt != job.Attempts[0].N {
		t.Errorf("moto's step is named %q, want the name of the job's attempt %d", aws.ToString(cluster.steps[0].Name), job.Attempts[0].N)
	}

	// A restart: the first server stops as `berth serve` does, and a new
	// one starts over the same store.
	firstUp = false
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}
	runs, adds, polls := calls.count("RunJobFlow"), calls.count("AddJobFlowSteps"), calls.count("DescribeCluster")
	second := startServer(t, cfg)
	t.Cleanup(func() {
		if err := second.Stop(); err != nil {
			t.Error(err)
		}
	})
	// The restarted server has looked at the cluster a few times: enough
	// to have found it lost, or the job's step gone, if it were to.
	const restartPolls = 3
	wait.For(t, motoDeadline, fmt.Sprintf("%d polls of the cluster after the restart", restartPolls), func() bool {
		return calls.count("DescribeCluster")-polls >= restartPolls
	})

	if n := calls.count("RunJobFlow") - runs; n != 0 {
		t.Errorf("the restarted server called RunJobFlow %d times, want none", n)
	}
	if n := calls.count("AddJobFlowSteps") - adds; n != 0 {
		t.Errorf("the restarted server called AddJobFlowSteps %d times, want none", n)
	}
	cs := motoClusters(t, raw)
	var seen []string
	for _, c := range cs {
		seen = append(seen, fmt.Sprintf("%s (%d steps)", aws.ToString(c.summary.Id), len(c.steps)))
	}
	if len(cs) != 1 || aws.ToString(cs[0].summary.Id) != emrID || len(cs[0].steps) != 1 {
		t.Fatalf("moto has clusters %v after the restart, want only %s with its one step", seen, emrID)
	}
	if st := cs[0].summary.Status.State; st != types.ClusterStateRunning {
		t.Errorf("moto's cluster is %s after the restart, want RUNNING", st)
	}
	got, err := second.Service().Job(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != berth.JobRunning || got.ClusterID != job.ClusterID || len(got.Attempts) != 1 || got.Attempts[0].Steps[0].ProviderID != stepID {
		t.Errorf("after the restart the job is %s on %s with %d attempts; want running on %s, its one attempt's step %s",
			got.State, got.ClusterID, len(got.Attempts), job.ClusterID, stepID)
	}
	cl, err := second.Service().Cluster(ctx, job.ClusterID)
	if err != nil {
		t.Fatal(err)
	}
	if cl.State != berth.ClusterReady || cl.ProviderID != emrID {
		t.Errorf("after the restart Berth's cluster is %s with EMR id %s, want ready, %s", cl.State, cl.ProviderID, emrID)
	}
}
