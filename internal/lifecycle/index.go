package lifecycle

import (
	"math"
	"slices"
	"strings"
	"time"

	"github.com/google/btree"

	"github.com/berthhq/berth/internal/berth"
)

// A pass costs what changed, not what is queued: the State keeps its jobs
// indexed as they move, so that no pass scans them all. Every change of a
// job's state goes through moveJob, which keeps the indexes true.
//
//   - Each pool's queue holds its queued jobs in three parts: those that
//     may be placed now, in placement order (a B-tree); those deferred to a
//     not_before, by that time; and those with a cancel request.
//   - Each cluster has the set of jobs running on it.
//   - Counts per pool feed the published view.

// queue is one pool's queued jobs.
type queue struct {
	ready    *btree.BTreeG[entry]
	deferred *btree.BTreeG[*berth.Job]
	cancel   map[string]*berth.Job
	// required counts the ready jobs that are affinity_required, and
	// dormant those held as their place only (see dormant.go).
	required int
	dormant  int
	n        int
}

func newQueue() *queue {
	return &queue{
		ready:    btree.NewG(32, entryLess),
		deferred: btree.NewG(32, deferredLess),
		cancel:   map[string]*berth.Job{},
	}
}

// entry is a job in a pool's ready queue: its place in placement order,
// and the job, or nil while the job is dormant (dormant.go).
type entry struct {
	priority int
	created  int64 // unix nanoseconds; see unixNano
	id       string
	job      *berth.Job
}

func entryOf(j *berth.Job) entry {
	return entry{priority: j.Priority, created: unixNano(j.CreatedAt), id: j.ID, job: j}
}

// unixNano is t as entry keeps it: a zero time sorts first, as it does
// among times.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return math.MinInt64
	}
	return t.UnixNano()
}

func (e entry) createdAt() time.Time {
	if e.created == math.MinInt64 {
		return time.Time{}
	}
	return time.Unix(0, e.created).UTC()
}

// entryLess is the scheduler's order: highest priority, then oldest, then
// id.
func entryLess(a, b entry) bool {
	if a.priority != b.priority {
		return a.priority > b.priority
	}
	if a.created != b.created {
		return a.created < b.created
	}
	return a.id < b.id
}

// placementLess is entryLess for jobs.
func placementLess(a, b *berth.Job) bool { return entryLess(entryOf(a), entryOf(b)) }

func deferredLess(a, b *berth.Job) bool {
	if !a.NotBefore.Equal(b.NotBefore) {
		return a.NotBefore.Before(b.NotBefore)
	}
	return a.ID < b.ID
}

func (s *State) queueOf(pool string) *queue {
	q := s.queues[pool]
	if q == nil {
		q = newQueue()
		s.queues[pool] = q
	}
	return q
}

// index enters a job in the indexes of its state; unindex takes it out.
func (s *State) index(j *berth.Job) {
	switch j.State {
	case berth.JobQueued:
		q := s.queueOf(j.Pool)
		q.n++
		switch {
		case j.CancelRequested:
			q.cancel[j.ID] = j
		case j.NotBefore.After(s.now):
			q.deferred.ReplaceOrInsert(j)
		default:
			q.ready.ReplaceOrInsert(entryOf(j))
			if j.AffinityRequired {
				q.required++
			}
		}
	case berth.JobRunning:
		on := s.running[j.ClusterID]
		if on == nil {
			on = map[string]*berth.Job{}
			s.running[j.ClusterID] = on
		}
		on[j.ID] = j
		s.runningN[j.Pool]++
		s.runningSorted = nil
		s.expectVer++
	}
}

func (s *State) unindex(j *berth.Job) {
	switch j.State {
	case berth.JobQueued:
		q := s.queueOf(j.Pool)
		q.n--
		delete(q.cancel, j.ID)
		q.deferred.Delete(j)
		if _, ok := q.ready.Delete(entryOf(j)); ok && j.AffinityRequired {
			q.required--
		}
	case berth.JobRunning:
		if on := s.running[j.ClusterID]; on != nil {
			delete(on, j.ID)
			if len(on) == 0 {
				delete(s.running, j.ClusterID)
			}
		}
		s.runningN[j.Pool]--
		s.runningSorted = nil
		s.expectVer++
	}
}

// promote moves the deferred jobs whose not_before has come into their
// pool's ready queue.
func (s *State) promote(now time.Time) {
	for _, name := range s.poolNames {
		q := s.queues[name]
		if q == nil {
			continue
		}
		for {
			j, ok := q.deferred.Min()
			if !ok || j.NotBefore.After(now) {
				break
			}
			q.deferred.DeleteMin()
			q.ready.ReplaceOrInsert(entryOf(j))
			if j.AffinityRequired {
				q.required++
			}
		}
	}
}

// nextDeferred is the earliest not_before of a deferred job.
func (s *State) nextDeferred() time.Time {
	var next time.Time
	for _, q := range s.queues {
		if j, ok := q.deferred.Min(); ok && (next.IsZero() || j.NotBefore.Before(next)) {
			next = j.NotBefore
		}
	}
	return next
}

// runningJobs returns the jobs with a running attempt, in id order.
//
// A pass asks for them several times; the sorted list is kept until a job
// starts or stops running, and the caller must not change it.
func (s *State) runningJobs() []*berth.Job {
	if s.runningSorted == nil {
		all := make([]*berth.Job, 0, len(s.running))
		for _, on := range s.running {
			for _, j := range on {
				all = append(all, j)
			}
		}
		slices.SortFunc(all, func(a, b *berth.Job) int { return strings.Compare(a.ID, b.ID) })
		s.runningSorted = all
	}
	for i, j := range s.runningSorted {
		if j.CurrentAttempt() == nil {
			// Rare: an attempt ended and the job not yet moved.
			out := slices.Clone(s.runningSorted[:i])
			for _, j := range s.runningSorted[i:] {
				if j.CurrentAttempt() != nil {
					out = append(out, j)
				}
			}
			return out
		}
	}
	return s.runningSorted
}

// cancelledQueued returns the queued jobs with a cancel request, in id
// order.
func (s *State) cancelledQueued() []*berth.Job {
	var out []*berth.Job
	for _, q := range s.queues {
		for _, j := range q.cancel {
			out = append(out, j)
		}
	}
	slices.SortFunc(out, func(a, b *berth.Job) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// QueueLen is the number of a pool's queued jobs, and Running that of its
// running ones, for the published view.
func (s *State) QueueLen(pool string) int {
	if q := s.queues[pool]; q != nil {
		return q.n
	}
	return 0
}

// RunningIn is the number of a pool's running jobs.
func (s *State) RunningIn(pool string) int { return s.runningN[pool] }
