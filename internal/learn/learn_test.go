package learn

import (
	"fmt"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// done is a job of pool p that succeeded after running d in one attempt.
func done(p, name string, labels map[string]string, d time.Duration) *berth.Job {
	return &berth.Job{Pool: p, Name: name, Labels: labels, State: berth.JobSucceeded, Attempts: []berth.Attempt{
		{N: 1, State: berth.AttemptSucceeded, StartedAt: t0, EndedAt: t0.Add(d)},
	}}
}

func labelled(dag, id string) map[string]string {
	return map[string]string{"dag_id": dag, "task_id": id}
}

func TestRunTimes(t *testing.T) {
	m := New()
	// Nothing seen: the default.
	if got := m.Run(&berth.Job{Pool: "p", Name: "x"}); got != DefaultRun {
		t.Fatalf("nothing seen: %s, want %s", got, DefaultRun)
	}
	m.ObserveJob(done("p", "load", labelled("nightly", "load"), 8*time.Minute))
	m.ObserveJob(done("p", "load", labelled("nightly", "load"), 12*time.Minute))
	m.ObserveJob(done("p", "sum", nil, 2*time.Minute))
	m.ObserveJob(done("p", "", nil, 4*time.Minute))

	tests := []struct {
		name string
		job  berth.Job
		want time.Duration
	}{
		// 8m, then a quarter of the way to 12m.
		{"by dag_id and task_id", berth.Job{Pool: "p", Name: "other", Labels: labelled("nightly", "load")}, 9 * time.Minute},
		{"the labels before the name", berth.Job{Pool: "p", Name: "sum", Labels: labelled("nightly", "load")}, 9 * time.Minute},
		{"by name without both labels", berth.Job{Pool: "p", Name: "sum", Labels: map[string]string{"dag_id": "nightly"}}, 2 * time.Minute},
		// (8 + 12 + 2 + 4) / 4
		{"an unknown task: the pool's mean", berth.Job{Pool: "p", Name: "new"}, 6*time.Minute + 30*time.Second},
		{"no task: the pool's mean", berth.Job{Pool: "p"}, 6*time.Minute + 30*time.Second},
		{"a task of another pool", berth.Job{Pool: "q", Name: "sum"}, DefaultRun},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := m.Run(&tt.job); got != tt.want {
				t.Fatalf("Run = %s, want %s", got, tt.want)
			}
		})
	}
}

// Only a whole success counts.
func TestOnlySuccessesCount(t *testing.T) {
	failed := done("p", "x", nil, time.Minute)
	failed.State = berth.JobFailed
	failed.Attempts[0].State = berth.AttemptFailed
	resumed := done("p", "x", nil, time.Minute)
	resumed.Attempts[0].FirstStep = 1
	running := done("p", "x", nil, time.Minute)
	running.State, running.Attempts[0].State, running.Attempts[0].EndedAt = berth.JobRunning, berth.AttemptRunning, time.Time{}
	never := &berth.Job{Pool: "p", Name: "x", State: berth.JobSucceeded}
	m := New()
	for _, j := range []*berth.Job{failed, resumed, running, never} {
		m.ObserveJob(j)
	}
	if got := m.Run(&berth.Job{Pool: "p", Name: "x"}); got != DefaultRun {
		t.Fatalf("Run = %s after no whole success, want %s", got, DefaultRun)
	}
	// The attempt that succeeded is the one measured, not the first.
	retried := done("p", "x", nil, 3*time.Minute)
	retried.Attempts = append([]berth.Attempt{{N: 1, State: berth.AttemptFailed, StartedAt: t0.Add(-time.Hour), EndedAt: t0}}, retried.Attempts...)
	m.ObserveJob(retried)
	if got := m.Run(&berth.Job{Pool: "p", Name: "x"}); got != 3*time.Minute {
		t.Fatalf("Run = %s, want the succeeded attempt's 3m", got)
	}
}

// The pool's mean is over its last 100 successes.
func TestPoolMeanIsRecent(t *testing.T) {
	m := New()
	for range 100 {
		m.ObserveJob(done("p", "", nil, time.Hour))
	}
	for range 50 {
		m.ObserveJob(done("p", "", nil, time.Minute))
	}
	want := (50*time.Hour + 50*time.Minute) / 100
	if got := m.Run(&berth.Job{Pool: "p"}); got != want {
		t.Fatalf("pool mean %s, want %s", got, want)
	}
}

// The task observed longest ago makes room for a new one.
func TestTasksAreBounded(t *testing.T) {
	m := New()
	m.maxTasks = 3
	for i := range 3 {
		m.ObserveJob(done("p", fmt.Sprint(i), nil, time.Duration(i+1)*time.Minute))
	}
	// 0 is observed again, so 1 is now the oldest.
	m.ObserveJob(done("p", "0", nil, time.Minute))
	m.ObserveJob(done("p", "3", nil, 9*time.Minute))
	if len(m.tasks) != 3 || m.lru.Len() != 3 {
		t.Fatalf("%d tasks kept, want 3", len(m.tasks))
	}
	for name, want := range map[string]bool{"0": true, "1": false, "2": true, "3": true} {
		if _, ok := m.tasks[Task{Pool: "p", Name: name}]; ok != want {
			t.Errorf("task %s kept: %v, want %v", name, ok, want)
		}
	}
}

func TestBootTimes(t *testing.T) {
	m := New()
	if got := m.Boot("p"); got != DefaultBoot {
		t.Fatalf("nothing known: %s, want %s", got, DefaultBoot)
	}
	m.Configure("p", 0)
	if got := m.Boot("p"); got != 0 {
		t.Fatalf("configured 0: %s, want 0", got)
	}
	m.Configure("p", 2*time.Minute)
	if got := m.Boot("p"); got != 2*time.Minute {
		t.Fatalf("configured: %s, want 2m", got)
	}
	m.ObserveBoot("p", 6*time.Minute)
	m.ObserveBoot("p", 10*time.Minute)
	if got := m.Boot("p"); got != 7*time.Minute {
		t.Fatalf("after 6m and 10m: %s, want 7m", got)
	}
	m.ObserveBoot("p", -time.Second)
	if got := m.Boot("p"); got != 7*time.Minute {
		t.Fatalf("a negative boot counted: %s", got)
	}
	if got := m.Boot("q"); got != DefaultBoot {
		t.Fatalf("another pool: %s, want %s", got, DefaultBoot)
	}
}

// The same observations give the same answers.
func TestDeterministic(t *testing.T) {
	run := func() []time.Duration {
		m := New()
		m.maxTasks = 7
		for i := range 500 {
			m.ObserveJob(done("p", fmt.Sprint(i%11), labelled("d", fmt.Sprint(i%13)), time.Duration(i*i%977)*time.Second))
			m.ObserveBoot("p", time.Duration(i%17)*time.Minute)
		}
		var out []time.Duration
		for i := range 13 {
			out = append(out, m.Run(&berth.Job{Pool: "p", Labels: labelled("d", fmt.Sprint(i))}))
		}
		return append(out, m.Boot("p"))
	}
	a, b := run(), run()
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("answer %d differs: %s and %s", i, a[i], b[i])
		}
	}
}
