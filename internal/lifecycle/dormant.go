package lifecycle

import (
	"github.com/berthhq/berth/internal/berth"
)

// A queue of a million jobs must not cost a gigabyte. So a dormant job
// (berth.Job.Dormant: queued, never started, nothing to it but its place in
// the queue) deep in a long queue is kept as its entry alone, with no job:
// its place in placement order is all the scheduler needs to count it and
// order it. Before each pass decides, the loop reads whole (Store.GetJobs)
// the dormant jobs Wanted names, those near the head that the pass may
// place or forecast, and hands them to Fill. The store holds every dormant
// job as it is: nothing but the store changes one (a cancel request), and
// such a change is read with the job.

// keepWhole is how many ready jobs a pool keeps whole before it keeps the
// dormant jobs submitted behind them as their place only.
const keepWhole = 4096

// dormantEntry is a dormant job's entry in its pool's ready queue.
func dormantEntry(d berth.DormantJob) entry {
	return entry{priority: d.Priority, created: unixNano(d.CreatedAt), id: d.ID}
}

// keepDormant enters a dormant job in its queue as its place only.
func (s *State) keepDormant(d berth.DormantJob) {
	q := s.queueOf(d.Pool)
	if _, had := q.ready.ReplaceOrInsert(dormantEntry(d)); !had {
		q.n++
		q.dormant++
	}
}

// behindWhole reports whether a job just submitted may be kept dormant: its
// queue keeps enough jobs whole (keepWhole, or the Config's), and it has
// no higher priority than the last of them, so it joins the queue's back
// rather than its head. (Jobs submitted in the same millisecond order by
// the random part of their ids, so the back is not only the very last.)
func (s *State) behindWhole(j *berth.Job) bool {
	if !j.Dormant() {
		return false
	}
	q := s.queueOf(j.Pool)
	limit := keepWhole
	if s.cfg.KeepWhole > 0 {
		limit = s.cfg.KeepWhole
	}
	if q.ready.Len() < limit {
		return false
	}
	last, ok := q.ready.Max()
	return ok && j.Priority <= last.priority
}

// readAhead is how many dormant jobs a pool reads whole at least once it
// must read any: a read costs about as much again per query as per job,
// so a queue burning down a dozen jobs a pass reads once in many passes.
const readAhead = 256

// Wanted returns the ids of the dormant jobs to read whole before the next
// Decide, pool by pool in placement order: those among the jobs a pass may
// place (a pool's free slots, and headMargin more) or forecast
// (forecastJobs), and when there are any, those after them up to
// readAhead in all.
func (s *State) Wanted() []string {
	var ids []string
	var free map[string]int
	for _, name := range s.poolNames {
		q := s.queues[name]
		if q == nil || q.dormant == 0 {
			continue
		}
		if free == nil {
			free = s.freeSlots()
		}
		near, seen, from := free[name]+headMargin+forecastJobs, 0, len(ids)
		q.ready.Ascend(func(e entry) bool {
			if e.job == nil {
				ids = append(ids, e.id)
			}
			seen++
			return seen < near || (len(ids) > from && len(ids)-from < readAhead)
		})
	}
	return ids
}

// Fill takes the dormant jobs read whole: each takes its entry's place, as
// it is now in the store. A job whose entry is gone, or that is not
// queued, changes nothing.
func (s *State) Fill(jobs []berth.Job) {
	for i := range jobs {
		j := &jobs[i]
		q := s.queues[j.Pool]
		if q == nil || j.State != berth.JobQueued {
			continue
		}
		e, ok := q.ready.Get(entryOf(j))
		if !ok || e.job != nil {
			continue
		}
		q.ready.Delete(e)
		q.n--
		q.dormant--
		s.jobs[j.ID] = j
		s.index(j)
	}
}
