package e2e

import (
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/client"
	"github.com/berthhq/berth/internal/emulator"
	"github.com/berthhq/berth/internal/wait"
)

// The pool every test runs on.
const (
	pool        = "spark"
	slots       = 4
	maxClusters = 3
	idleTimeout = 2 * time.Second
	logURI      = "s3://berth-logs/emr/"
)

// configYAML is the berth configuration of a test: SQLite in the test's
// directory, the API on a port of the system's choosing, one EMR pool on
// the emulator at %s.
const configYAML = `
listen: 127.0.0.1:0
store: sqlite://berth.db
log_level: debug
pools:
  - name: ` + pool + `
    provider: emr
    slots: %d
    max_clusters: %d
    idle_timeout: %s
    price_per_hour: 2.5
    emr:
      region: us-east-1
      endpoint: %s
      release_label: emr-7.5.0
      applications: [Spark, Hadoop]
      log_uri: ` + logURI + `
      poll_interval: 200ms
      instance_groups:
        - {role: MASTER, instance_type: m5.xlarge, count: 1, market: ON_DEMAND}
        - {role: CORE, instance_type: r5.2xlarge, count: 2, market: SPOT}
`

// world is one test's EMR emulator, on a loopback HTTP server in the test
// process, and the berths that run an EMR pool on it.
type world struct {
	*berths
	emu *emulator.Emulator
	url string
	// neighbourThrottled counts the calls of a noisy neighbour that EMR
	// throttled (see throttleBurst).
	neighbourThrottled int
}

// newWorld starts an emulator with short times and writes a berth
// configuration for it; startBerth runs berth over it.
func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{}
	w.emu = emulator.New(emulator.Options{
		BootTime:      300 * time.Millisecond,
		BootstrapTime: 100 * time.Millisecond,
		TerminateTime: 100 * time.Millisecond,
		LogDelay:      50 * time.Millisecond,
		LossLag:       200 * time.Millisecond,
		WorkDir:       t.TempDir(),
	})
	srv := httptest.NewServer(w.emu)
	w.url = srv.URL
	t.Cleanup(func() {
		w.emu.Close()
		srv.Close()
	})
	// Cleanups run last first: the berths stop while the emulator still
	// answers, and what it holds is told once they have stopped.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the emulator:\n%s", w.describe())
		}
	})
	w.berths = newBerths(t, fmt.Sprintf(configYAML, slots, maxClusters, idleTimeout, w.url))
	return w
}

// describe is what the emulator holds, a line per cluster and per step.
func (w *world) describe() string {
	var b strings.Builder
	for _, c := range w.emu.Snapshot() {
		fmt.Fprintf(&b, "%s %q %s %s\n", c.ID, c.Name, c.State, c.Code)
		for _, s := range c.Steps {
			fmt.Fprintf(&b, "  %s %s %s %s\n", s.ID, s.Name, s.State, s.FailureMessage)
		}
	}
	return b.String()
}

// shellStep is a step that runs script under sh on the cluster.
func shellStep(name, script string) berth.Step {
	return berth.Step{Name: name, Args: []string{"sh", "-c", script}}
}

// job is a spec of the test pool with the given steps.
func job(name string, steps ...berth.Step) berth.JobSpec {
	return berth.JobSpec{Pool: pool, Name: name, Steps: steps, IdempotencyKey: "e2e/" + name}
}

// submit submits specs and returns their jobs' ids, in order.
func submit(t *testing.T, c *client.Client, specs ...berth.JobSpec) []string {
	t.Helper()
	ids := make([]string, 0, len(specs))
	for _, s := range specs {
		j, created, err := c.Submit(context.Background(), s)
		if err != nil || !created {
			t.Fatalf("submit %s: created=%v, %v", s.Name, created, err)
		}
		ids = append(ids, j.ID)
	}
	return ids
}

// waitEnded long-polls each job until it has ended and returns them by id.
func waitEnded(t *testing.T, c *client.Client, ids []string) map[string]berth.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	jobs := map[string]berth.Job{}
	for _, id := range ids {
		for {
			j, err := c.WaitJob(ctx, id, 10*time.Second)
			if err != nil {
				t.Fatalf("waiting for job %s to end: %v", id, err)
			}
			if j.State.Terminal() {
				jobs[id] = j
				break
			}
		}
	}
	return jobs
}

// emuSteps are the emulator's steps, in the order of its clusters and of
// their steps, with the cluster of each.
func emuSteps(snap []emulator.Cluster) (steps []emulator.Step, on []emulator.Cluster) {
	for _, c := range snap {
		for _, s := range c.Steps {
			steps, on = append(steps, s), append(on, c)
		}
	}
	return steps, on
}

// stepsIn counts the emulator's steps in one of states.
func stepsIn(snap []emulator.Cluster, states ...string) int {
	n := 0
	steps, _ := emuSteps(snap)
	for _, s := range steps {
		if slices.Contains(states, s.State) {
			n++
		}
	}
	return n
}

// noSteps reports whether no step was added to any cluster yet.
func noSteps(snap []emulator.Cluster) bool {
	steps, _ := emuSteps(snap)
	return len(steps) == 0
}

// clusterID is the Berth cluster id in the name of an emulator cluster
// ("berth <installation> <pool> <cluster id>"), "" when the name is not
// one Berth gives.
func clusterID(c emulator.Cluster) string {
	f := strings.Fields(c.Name)
	if len(f) != 4 || f[0] != "berth" || f[2] != pool {
		return ""
	}
	return f[3]
}

// checkOnce asserts what every run must leave behind, whatever broke
// during it: every job succeeded, in exactly one attempt that succeeded,
// its other attempts ended by the infrastructure; on the emulator, each
// Berth cluster id was started once and each step name (job, attempt,
// step) added once, all of them Berth's, and the successful attempts'
// steps ran to completion on the cluster of their attempt.
func (w *world) checkOnce(jobs map[string]berth.Job) {
	t := w.t
	t.Helper()
	snap := w.emu.Snapshot()
	byCluster := map[string]emulator.Cluster{}
	for _, c := range snap {
		cid := clusterID(c)
		switch prev, dup := byCluster[cid]; {
		case cid == "":
			t.Errorf("cluster %s has a name Berth does not give: %q", c.ID, c.Name)
		case dup:
			t.Errorf("Berth cluster %s was started twice: %s and %s", cid, prev.ID, c.ID)
		default:
			byCluster[cid] = c
		}
	}
	byName := map[string]emulator.Step{}
	steps, on := emuSteps(snap)
	for i, s := range steps {
		if prev, dup := byName[s.Name]; dup {
			t.Errorf("step %s was added twice: %s (%s) and %s on %s (%s)", s.Name, prev.ID, prev.State, s.ID, on[i].ID, s.State)
			continue
		}
		byName[s.Name] = s
		jobID, _, _, ok := berth.ParseStepName(s.Name)
		if _, known := jobs[jobID]; !ok || !known {
			t.Errorf("step %s (%s on %s) is of no job of the test", s.Name, s.ID, on[i].ID)
		}
	}
	for id, j := range jobs {
		if j.State != berth.JobSucceeded {
			t.Errorf("job %s (%s) ended %s, %s", id, j.Name, j.State, j.Reason)
			continue
		}
		won := 0
		for _, a := range j.Attempts {
			switch a.Reason {
			case berth.ReasonSucceeded:
				won++
				w.checkRan(j, a, byName, byCluster)
			case berth.ReasonClusterLost, berth.ReasonProviderError:
			default:
				t.Errorf("job %s (%s): attempt %d ended %s, which is not the infrastructure's", id, j.Name, a.N, a.Reason)
			}
		}
		if won != 1 {
			t.Errorf("job %s (%s) has %d successful attempts, want 1: %+v", id, j.Name, won, j.Attempts)
		}
	}
}

// checkRan asserts that each step of a successful attempt completed on
// the emulator, on the cluster of its attempt.
func (w *world) checkRan(j berth.Job, a berth.Attempt, byName map[string]emulator.Step, byCluster map[string]emulator.Cluster) {
	w.t.Helper()
	c := byCluster[a.ClusterID]
	for s := a.FirstStep; s < len(j.Steps); s++ {
		name := berth.StepName(j.ID, a.N, s)
		st, ok := byName[name]
		switch {
		case !ok:
			w.t.Errorf("job %s (%s): the emulator has no step %s of its successful attempt", j.ID, j.Name, name)
		case st.State != emulator.StepCompleted:
			w.t.Errorf("job %s (%s): step %s of its successful attempt is %s on the emulator", j.ID, j.Name, name, st.State)
		case !slices.ContainsFunc(c.Steps, func(x emulator.Step) bool { return x.ID == st.ID }):
			w.t.Errorf("job %s (%s): step %s ran on another cluster than its attempt's %s", j.ID, j.Name, name, a.ClusterID)
		}
	}
}

// waitAllTerminated waits for the pool to scale in to nothing once the
// work is done: Berth terminates each idle cluster after idle_timeout
// (the emulator's own auto-termination comes far later).
func (w *world) waitAllTerminated() {
	w.t.Helper()
	wait.For(w.t, deadline, "every cluster to be terminated after the idle timeout", func() bool {
		for _, c := range w.emu.Snapshot() {
			if c.State != emulator.ClusterTerminated && c.State != emulator.ClusterTerminatedWithErrors {
				return false
			}
		}
		return true
	})
}
