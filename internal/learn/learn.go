// Package learn keeps what Berth has seen of how long things take: how
// long a job of each task runs, and how long each pool's clusters take to
// boot. The forecast of when a queued job will start (package forecast)
// asks it.
//
// It is pure and deterministic, as the lifecycle that feeds it: the same
// observations in the same order give the same answers. Nothing here reads
// a clock; the caller says what it saw.
//
// # Run times
//
// A job is known by its task: (pool, dag_id, task_id) when it has both
// labels, as Airflow's operator sets them, else (pool, name), else only its
// pool. Each task's estimate is an exponentially weighted moving average of
// its successes' run times, each new one moving it a quarter of the way
// (the first sets it), so that it follows a task whose data grows without
// being thrown by one odd run. A task never seen gets its pool's mean over
// the pool's last 100 successes, and a pool never seen DefaultRun. Only
// successes count: a failed run says nothing of how long the work takes.
//
// At most MaxTasks tasks are kept; the one observed longest ago makes
// room for a new one.
//
// # Boot times
//
// A pool's boot time is the same average over its clusters' ready − created
// times; before any is seen, the pool's configured boot time if it has one,
// else DefaultBoot.
package learn

import (
	"container/list"
	"time"

	"github.com/berthhq/berth/internal/berth"
)

const (
	// DefaultRun is the expected run time of a job of a pool that has had
	// no success yet.
	DefaultRun = 10 * time.Minute
	// DefaultBoot is the expected boot time of a pool that has seen no
	// cluster ready and has no configured boot time.
	DefaultBoot = 10 * time.Minute
	// MaxTasks bounds the tasks the model keeps.
	MaxTasks = 10_000
	// poolWindow is how many of a pool's latest successes its mean is
	// taken over.
	poolWindow = 100
	// weight is the inverse of how far one observation moves an average.
	weight = 4
)

// Model is what has been learned. The zero value is not usable; call New.
type Model struct {
	tasks map[Task]*list.Element
	// lru holds the tasks, the most recently observed at the front.
	lru   *list.List
	pools map[string]*pool
	// maxTasks is MaxTasks, smaller in tests.
	maxTasks int
}

// Task names the work a job does, for its run time: a pipeline's task
// (DAG and Name from the dag_id and task_id labels) or, with DAG "", a job
// known by its name, on Pool.
type Task struct {
	Pool, DAG, Name string
}

type taskEntry struct {
	key Task
	avg time.Duration
}

type pool struct {
	// ring holds the latest successes' run times, next is where the next
	// goes and n how many it holds; sum is their total.
	ring [poolWindow]time.Duration
	next int
	n    int
	sum  time.Duration

	boot     time.Duration
	bootSeen bool
	// configured is the pool's configured boot time; hasConfigured says
	// there is one (0 is a boot time too).
	configured    time.Duration
	hasConfigured bool
}

// New returns a model that has seen nothing.
func New() *Model {
	return &Model{tasks: map[Task]*list.Element{}, lru: list.New(), pools: map[string]*pool{}, maxTasks: MaxTasks}
}

func (m *Model) pool(name string) *pool {
	p := m.pools[name]
	if p == nil {
		p = &pool{}
		m.pools[name] = p
	}
	return p
}

// Configure sets a pool's configured boot time, the expected boot until a
// cluster of the pool has been seen ready.
func (m *Model) Configure(poolName string, boot time.Duration) {
	p := m.pool(poolName)
	p.configured, p.hasConfigured = max(boot, 0), true
}

// TaskOf is the task a job is known by; ok is false for a job known only
// by its pool.
func TaskOf(j *berth.Job) (Task, bool) {
	dag, taskID := j.Labels[berth.LabelDAG], j.Labels[berth.LabelTask]
	switch {
	case dag != "" && taskID != "":
		return Task{Pool: j.Pool, DAG: dag, Name: taskID}, true
	case j.Name != "":
		return Task{Pool: j.Pool, Name: j.Name}, true
	}
	return Task{}, false
}

// RunTime is how long a succeeded job's work took: its last attempt, the
// one that succeeded, from placement to end. An attempt that resumed after
// earlier steps ran elsewhere (resume: unfinished) ran only part of the
// work, so it tells nothing and ok is false.
func RunTime(j *berth.Job) (d time.Duration, ok bool) {
	if j.State != berth.JobSucceeded || len(j.Attempts) == 0 {
		return 0, false
	}
	a := j.Attempts[len(j.Attempts)-1]
	if a.State != berth.AttemptSucceeded || a.FirstStep != 0 || a.StartedAt.IsZero() || a.EndedAt.Before(a.StartedAt) {
		return 0, false
	}
	return a.EndedAt.Sub(a.StartedAt), true
}

// ObserveJob learns from a job that ended: a success's run time counts
// towards its task and its pool; anything else is ignored.
func (m *Model) ObserveJob(j *berth.Job) {
	d, ok := RunTime(j)
	if !ok {
		return
	}
	p := m.pool(j.Pool)
	if p.n == poolWindow {
		p.sum -= p.ring[p.next]
	} else {
		p.n++
	}
	p.ring[p.next] = d
	p.sum += d
	p.next = (p.next + 1) % poolWindow

	key, ok := TaskOf(j)
	if !ok {
		return
	}
	if el, seen := m.tasks[key]; seen {
		e := el.Value.(*taskEntry)
		e.avg = average(e.avg, d)
		m.lru.MoveToFront(el)
		return
	}
	if m.lru.Len() >= m.maxTasks {
		old := m.lru.Back()
		delete(m.tasks, old.Value.(*taskEntry).key)
		m.lru.Remove(old)
	}
	m.tasks[key] = m.lru.PushFront(&taskEntry{key: key, avg: d})
}

// Run is the expected run time of a job: its task's average, else its
// pool's mean, else DefaultRun.
func (m *Model) Run(j *berth.Job) time.Duration {
	if key, ok := TaskOf(j); ok {
		if el, seen := m.tasks[key]; seen {
			return el.Value.(*taskEntry).avg
		}
	}
	if p := m.pools[j.Pool]; p != nil && p.n > 0 {
		return p.sum / time.Duration(p.n)
	}
	return DefaultRun
}

// Known is the average run time of a task that has succeeded before; ok
// is false for a task never seen, where Run would guess from the pool.
func (m *Model) Known(t Task) (d time.Duration, ok bool) {
	if el, seen := m.tasks[t]; seen {
		return el.Value.(*taskEntry).avg, true
	}
	return 0, false
}

// ObserveBoot learns that a cluster of the pool took d from its creation
// to ready.
func (m *Model) ObserveBoot(poolName string, d time.Duration) {
	if d < 0 {
		return
	}
	p := m.pool(poolName)
	if !p.bootSeen {
		p.boot, p.bootSeen = d, true
		return
	}
	p.boot = average(p.boot, d)
}

// Boot is the expected time a new cluster of the pool takes to become
// ready: the average of those seen, else the configured boot time, else
// DefaultBoot.
func (m *Model) Boot(poolName string) time.Duration {
	p := m.pools[poolName]
	switch {
	case p == nil:
		return DefaultBoot
	case p.bootSeen:
		return p.boot
	case p.hasConfigured:
		return p.configured
	}
	return DefaultBoot
}

// average moves avg a weight-th of the way to d, in whole nanoseconds so
// that it is the same on every machine.
func average(avg, d time.Duration) time.Duration { return avg + (d-avg)/weight }
