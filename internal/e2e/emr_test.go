package e2e

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/emulator"
	"github.com/berthhq/berth/internal/wait"
)

// TestJobsRunToCompletion runs one-step jobs and a two-step job through
// berth serve on EMR, and reads back through the API what each step
// printed, from where EMR put its log.
func TestJobsRunToCompletion(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	b := w.startBerth()
	var specs []berth.JobSpec
	var printed [][]string // what each step of each job prints
	for i := range 8 {
		out := fmt.Sprintf("hi from bin %d", i)
		specs = append(specs, job(fmt.Sprintf("bin-%d", i), shellStep("work", "echo "+out+"; sleep 1")))
		printed = append(printed, []string{out})
	}
	specs = append(specs, job("phases",
		shellStep("extract", "echo extracted; sleep 1"),
		shellStep("load", "echo loaded; sleep 1")))
	printed = append(printed, []string{"extracted", "loaded"})
	ids := submit(t, b.client, specs...)
	jobs := waitEnded(t, b.client, ids)
	w.checkOnce(jobs)
	if t.Failed() {
		return
	}

	ctx := context.Background()
	for i, id := range ids {
		j := jobs[id]
		a := j.Attempts[len(j.Attempts)-1]
		cl, err := b.client.Cluster(ctx, a.ClusterID)
		if err != nil {
			t.Fatalf("cluster %s of job %s: %v", a.ClusterID, j.Name, err)
		}
		for _, st := range a.Steps {
			want := printed[i][st.Index]
			var l berth.Logs
			wait.For(t, deadline, fmt.Sprintf("the log of job %s step %d to show %q", j.Name, st.Index, want), func() bool {
				l, err = b.client.Logs(ctx, id, 0, st.Index)
				return err == nil && strings.Contains(l.Stdout, want)
			})
			loc := logURI + cl.ProviderID + "/steps/" + st.ProviderID + "/"
			if l.Location != loc || l.JobID != id || l.Attempt != a.N || l.Step != st.Index {
				t.Errorf("job %s step %d: logs %+v, want job %s attempt %d step %d at %s", j.Name, st.Index, l, id, a.N, st.Index, loc)
			}
		}
	}
	w.waitAllTerminated()
}

// TestSpotLossRequeuesTheJob reclaims the spot capacity of a cluster
// while a job's step runs on it: the job goes back to the queue by
// itself, runs again on a replacement cluster and succeeds, the lost
// attempt charged to the infrastructure and not to the job's retries.
func TestSpotLossRequeuesTheJob(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		spec berth.JobSpec
		// lose is the step running when the cluster is lost; again the
		// step the next attempt starts from.
		lose, again int
	}{
		{name: "from the start", spec: job("phase-3", shellStep("transform", "echo transforming; sleep 3"))},
		{name: "from the unfinished step", spec: func() berth.JobSpec {
			s := job("phases", shellStep("extract", "echo extracted"), shellStep("transform", "echo transforming; sleep 3"))
			s.Resume = berth.ResumeUnfinished
			return s
		}(), lose: 1, again: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			b := w.startBerth()
			tc.spec.Retries = 1
			ids := submit(t, b.client, tc.spec)
			id := ids[0]

			running := berth.StepName(id, 1, tc.lose)
			var victim string
			wait.For(t, deadline, "step "+running+" to run on the emulator", func() bool {
				for _, c := range w.emu.Snapshot() {
					for _, s := range c.Steps {
						if s.Name == running && s.State == emulator.StepRunning {
							victim = c.ID
						}
					}
				}
				return victim != ""
			})
			if err := w.emu.SpotLoss(victim); err != nil {
				t.Fatalf("spot loss of %s: %v", victim, err)
			}
			jobs := waitEnded(t, b.client, ids)
			w.checkOnce(jobs)

			j := jobs[id]
			if len(j.Attempts) != 2 {
				t.Fatalf("job has %d attempts, want the lost one and the one that succeeded: %+v", len(j.Attempts), j.Attempts)
			}
			lost, won := j.Attempts[0], j.Attempts[1]
			if lost.Reason != berth.ReasonClusterLost {
				t.Errorf("the attempt on the reclaimed cluster ended %s, want %s", lost.Reason, berth.ReasonClusterLost)
			}
			if lost.ClusterID == won.ClusterID {
				t.Errorf("the job ran again on the cluster it lost, %s", lost.ClusterID)
			}
			if won.FirstStep != tc.again {
				t.Errorf("the attempt after the loss started from step %d, want %d", won.FirstStep, tc.again)
			}
			if j.UserFailures != 0 || j.InfraFailures != 1 || j.Retries != tc.spec.Retries {
				t.Errorf("user failures %d, infra failures %d, retries %d; want 0, 1, %d: the loss is the infrastructure's",
					j.UserFailures, j.InfraFailures, j.Retries, tc.spec.Retries)
			}
			c, err := b.client.Cluster(context.Background(), lost.ClusterID)
			if err != nil {
				t.Fatal(err)
			}
			if c.State != berth.ClusterLost || c.ProviderID != victim {
				t.Errorf("the reclaimed cluster %s is %s with provider id %s, want lost on %s", lost.ClusterID, c.State, c.ProviderID, victim)
			}
			w.waitAllTerminated()
		})
	}
}

// TestKillNineWhileWorkRuns kills berth with SIGKILL at different moments
// of a workload and starts a new one over the same store: the new one
// adopts what the dead one started on EMR, and every job succeeds, no
// cluster or step started twice.
func TestKillNineWhileWorkRuns(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// before breaks the emulator before the jobs come.
		before func(*emulator.Emulator)
		// until is the moment of the kill, on what the emulator holds;
		// nil kills right after the submissions were acknowledged.
		until func([]emulator.Cluster) bool
		// whileDown breaks something while no berth runs; lost says it
		// loses clusters, so that jobs run again.
		whileDown func(*testing.T, *world)
		lost      bool
		// again kills the restarted berth too, as soon as it is ready,
		// while it adopts what the first left.
		again bool
		// throttled says EMR must have refused some of berth's calls
		// for the rate.
		throttled bool
	}{
		{name: "right after submission"},
		// Booting takes 400 ms, which a loaded machine's wait can miss:
		// a cluster started and no step added yet is the same moment for
		// what is checked.
		{name: "while clusters start", until: func(snap []emulator.Cluster) bool {
			return slices.ContainsFunc(snap, func(c emulator.Cluster) bool {
				return c.State == emulator.ClusterStarting || c.State == emulator.ClusterBootstrapping
			}) || (len(snap) > 0 && noSteps(snap))
		}},
		{name: "while steps are added", until: func(snap []emulator.Cluster) bool {
			return stepsIn(snap, emulator.StepPending, emulator.StepRunning) > 0
		}},
		{name: "while steps run", until: func(snap []emulator.Cluster) bool {
			return stepsIn(snap, emulator.StepRunning) >= 2
		}},
		// The first cluster and the first steps to come are those whose
		// answers were lost: the berth that is killed knew it was in
		// doubt about them and would have looked; the next one must too.
		{name: "after a lost RunJobFlow answer", before: func(e *emulator.Emulator) {
			e.DropReplies("RunJobFlow", 1)
		}, until: func(snap []emulator.Cluster) bool { return len(snap) > 0 }},
		{name: "after lost AddJobFlowSteps answers", before: func(e *emulator.Emulator) {
			e.DropReplies("AddJobFlowSteps", 2)
		}, until: func(snap []emulator.Cluster) bool {
			return stepsIn(snap, emulator.StepPending, emulator.StepRunning) >= 2
		}},
		{name: "while clusters scale in", until: func(snap []emulator.Cluster) bool {
			return slices.ContainsFunc(snap, func(c emulator.Cluster) bool {
				return c.State == emulator.ClusterTerminating || c.State == emulator.ClusterTerminated
			})
		}},
		{name: "and a cluster lost while berth is down", until: func(snap []emulator.Cluster) bool {
			return stepsIn(snap, emulator.StepRunning) >= 2
		}, whileDown: loseBusiestCluster, lost: true},
		{name: "twice, the second while adopting", until: func(snap []emulator.Cluster) bool {
			return stepsIn(snap, emulator.StepRunning) >= 2
		}, again: true},
		{name: "into a throttled account", before: func(e *emulator.Emulator) { e.SetThrottle(true) }, until: func(snap []emulator.Cluster) bool {
			return stepsIn(snap, emulator.StepRunning) >= 2
		}, whileDown: drainBuckets, throttled: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			b := w.startBerth()
			if tc.before != nil {
				tc.before(w.emu)
			}
			// Every other job has two steps, so that some step ends while
			// no berth runs and the next must be added by the new one.
			var specs []berth.JobSpec
			for i := range 8 {
				steps := []berth.Step{shellStep("work", fmt.Sprintf("echo bin %d; sleep 3", i))}
				if i%2 == 1 {
					steps = []berth.Step{shellStep("prepare", "sleep 1"), shellStep("work", fmt.Sprintf("echo bin %d; sleep 2", i))}
				}
				specs = append(specs, job(fmt.Sprintf("bin-%d", i), steps...))
			}
			ids := submit(t, b.client, specs...)
			if tc.until != nil {
				wait.For(t, deadline, "the moment to kill berth", func() bool { return tc.until(w.emu.Snapshot()) })
			}
			b.kill()
			if tc.whileDown != nil {
				tc.whileDown(t, w)
			}
			b = w.startBerth()
			if tc.again {
				b.kill()
				b = w.startBerth()
			}
			jobs := waitEnded(t, b.client, ids)
			w.checkOnce(jobs)
			again := 0
			for _, j := range jobs {
				if len(j.Attempts) > 1 {
					again++
					if !tc.lost {
						t.Errorf("job %s (%s) ran %d times; a crash of berth is no reason to run it again: %+v", j.ID, j.Name, len(j.Attempts), j.Attempts)
					}
				}
			}
			if tc.lost && again == 0 {
				t.Errorf("no job ran again after its cluster was lost while berth was down")
			}
			if tc.throttled && w.berthThrottled() == 0 {
				t.Errorf("EMR throttled none of berth's calls")
			}
			w.waitAllTerminated()
		})
	}
}

// loseBusiestCluster reclaims the spot capacity of the cluster with the
// most running steps.
func loseBusiestCluster(t *testing.T, w *world) {
	t.Helper()
	var victim string
	most := 0
	for _, c := range w.emu.Snapshot() {
		if n := stepsIn([]emulator.Cluster{c}, emulator.StepRunning); n > most {
			victim, most = c.ID, n
		}
	}
	if err := w.emu.SpotLoss(victim); err != nil {
		t.Fatalf("spot loss of %s: %v", victim, err)
	}
}

// TestLostAnswersAndThrottling loses EMR's answers to calls that took
// effect, and throttles berth in a burst: berth finds what the lost
// answers started instead of starting it again, rides out the
// throttling, and every job succeeds.
func TestLostAnswersAndThrottling(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// before breaks the emulator before the jobs come, during while
		// they are submitted.
		before func(*emulator.Emulator)
		during func(*testing.T, *world)
		// jobs is how many jobs come; 0 is 6.
		jobs int
	}{
		{name: "a lost RunJobFlow answer", before: func(e *emulator.Emulator) { e.DropReplies("RunJobFlow", 1) }},
		{name: "lost AddJobFlowSteps answers", before: func(e *emulator.Emulator) { e.DropReplies("AddJobFlowSteps", 2) }},
		{name: "a lost answer of each", before: func(e *emulator.Emulator) {
			e.DropReplies("RunJobFlow", 1)
			e.DropReplies("AddJobFlowSteps", 1)
		}},
		{name: "a lost TerminateJobFlows answer", before: func(e *emulator.Emulator) { e.DropReplies("TerminateJobFlows", 1) }},
		{name: "a burst of throttling", before: func(e *emulator.Emulator) { e.SetThrottle(true) }, during: throttleBurst, jobs: 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			b := w.startBerth()
			tc.before(w.emu)
			var specs []berth.JobSpec
			for i := range cmp.Or(tc.jobs, 6) {
				specs = append(specs, job(fmt.Sprintf("bin-%d", i), shellStep("work", fmt.Sprintf("echo bin %d; sleep 1", i))))
			}
			ids := submit(t, b.client, specs...)
			if tc.during != nil {
				tc.during(t, w)
			}
			jobs := waitEnded(t, b.client, ids)
			w.checkOnce(jobs)
			w.waitAllTerminated()
		})
	}
}

// berthThrottles is how many of berth's calls a burst of throttling
// refuses before it ends.
const berthThrottles = 5

// neighbourCalls are what a noisy neighbour in berth's account calls, on
// a cluster that is not there: EMR takes a token for a call before it
// looks at it, so each drains its API's bucket and the account's. Those
// berth calls too are among them; together their buckets refill faster
// than the account's.
var neighbourCalls = []struct{ op, body string }{
	{"DescribeCluster", `{"ClusterId":"j-NEIGHBOUR"}`},
	{"ListSteps", `{"ClusterId":"j-NEIGHBOUR"}`},
	{"AddJobFlowSteps", `{"JobFlowId":"j-NEIGHBOUR","Steps":[]}`},
	{"ListClusters", `{}`},
	{"ListInstanceGroups", `{"ClusterId":"j-NEIGHBOUR"}`},
	{"ListInstanceFleets", `{"ClusterId":"j-NEIGHBOUR"}`},
	{"GetAutoTerminationPolicy", `{"ClusterId":"j-NEIGHBOUR"}`},
}

// drainBuckets empties the token buckets of the APIs berth calls, and the
// account's, as a neighbour that called EMR hard would: the next berth,
// its own buckets full, finds EMR's empty.
func drainBuckets(t *testing.T, w *world) {
	t.Helper()
	for range 4 {
		for _, c := range neighbourCalls {
			for range 10 {
				w.neighbourCall(c.op, c.body)
			}
		}
	}
}

// throttleBurst is a noisy neighbour in berth's account: it calls EMR as
// fast as it can, keeping the token buckets empty, until EMR has refused
// berthThrottles of berth's own calls for the rate.
func throttleBurst(t *testing.T, w *world) {
	t.Helper()
	n := 0
	wait.For(t, deadline, fmt.Sprintf("EMR to throttle %d of berth's calls", berthThrottles), func() bool {
		c := neighbourCalls[n%len(neighbourCalls)]
		n++
		w.neighbourCall(c.op, c.body)
		return w.berthThrottled() >= berthThrottles
	})
}

// neighbourCall makes one EMR call as the neighbour, counting it in
// neighbourThrottled if it was throttled.
func (w *world) neighbourCall(op, body string) {
	w.t.Helper()
	req, err := http.NewRequest(http.MethodPost, w.url, strings.NewReader(body))
	if err != nil {
		w.t.Fatal(err)
	}
	req.Header.Set("X-Amz-Target", "ElasticMapReduce."+op)
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatalf("the neighbour's call: %v", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.Header.Get("X-Amzn-ErrorType") == "ThrottlingException" {
		w.neighbourThrottled++
	}
}

// berthThrottled is how many of berth's calls EMR refused for the rate:
// the neighbour's calls are answered by the time it asks, so what else
// was throttled was berth's.
func (w *world) berthThrottled() int {
	return w.emu.Throttled() - w.neighbourThrottled
}
