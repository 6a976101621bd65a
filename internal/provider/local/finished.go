package local

import (
	"errors"
	"sync"
	"syscall"
	"time"

	"github.com/berthhq/berth/internal/provider"
)

// finishedSteps remembers, per cluster, the steps this Provider has read
// in a state that can never change again, so that a poll reads from disk
// only the steps that may still change. Without it every poll re-read
// every step a warm cluster ever ran.
//
// It is only a copy of what is on disk: a Provider without it (a restarted
// server, another pool's Provider on the same Dir) reads the same answers
// from the files, and builds its own. It holds steps of running clusters
// only, because a step's answer depends on its cluster's record once that
// has ended (the message and end time of a step that vanished with it).
type finishedSteps struct {
	mu       sync.Mutex
	clusters map[string]*clusterFinished
}

type clusterFinished struct {
	// createdAt tells the cluster from a later one under the same id, as
	// someone who removed its directory by hand could create.
	createdAt time.Time
	steps     map[string]listedStep // by step id
	// forgotten are the steps the service no longer needs listed
	// (ForgetSteps), to be moved out of the steps directory.
	forgotten map[string]bool
}

// listedStep is one step as ListSteps reports it, and what it sorts by.
type listedStep struct {
	step      provider.Step
	submitted time.Time
	// pgid is the step's process group; 0 when it never had one.
	pgid int
}

func newFinishedSteps() *finishedSteps {
	return &finishedSteps{clusters: map[string]*clusterFinished{}}
}

// lookup splits the step ids found in cluster c's directory into the
// steps it knows as finished and the ids to read from disk. It forgets
// steps whose directory is gone, so that it never lists more than a fresh
// read would.
func (f *finishedSteps) lookup(c *clusterRecord, ids []string) (known []listedStep, read []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cf := f.clusters[c.ID]
	if cf != nil && !cf.createdAt.Equal(c.CreatedAt) {
		delete(f.clusters, c.ID)
		cf = nil
	}
	if cf == nil {
		return nil, ids
	}
	known = make([]listedStep, 0, len(cf.steps))
	read = make([]string, 0, len(ids)-min(len(ids), len(cf.steps)))
	for _, id := range ids {
		if l, ok := cf.steps[id]; ok {
			l.step = copyStep(l.step)
			known = append(known, l)
		} else {
			read = append(read, id)
		}
	}
	if len(known) < len(cf.steps) || len(cf.forgotten) > 0 {
		listed := make(map[string]bool, len(ids))
		for _, id := range ids {
			listed[id] = true
		}
		for id := range cf.steps {
			if !listed[id] {
				delete(cf.steps, id)
			}
		}
		for id := range cf.forgotten {
			if !listed[id] {
				delete(cf.forgotten, id)
			}
		}
	}
	return known, read
}

// forget notes steps of a cluster that the service will not ask about
// again. Only a cluster this Provider has listed has them: it learnt of
// their ends from ListSteps.
func (f *finishedSteps) forget(clusterID string, ids []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cf := f.clusters[clusterID]
	if cf == nil {
		return
	}
	if cf.forgotten == nil {
		cf.forgotten = map[string]bool{}
	}
	for _, id := range ids {
		cf.forgotten[id] = true
	}
}

// movable returns the forgotten steps of cluster c that can be moved out
// of its steps directory: those finished for good whose process group is
// empty, so that nothing of theirs is left for the cluster's termination
// to stop. It forgets them, and the rest stay until they are.
func (f *finishedSteps) movable(c *clusterRecord) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	cf := f.clusters[c.ID]
	if cf == nil || !cf.createdAt.Equal(c.CreatedAt) {
		return nil
	}
	var ids []string
	for id := range cf.forgotten {
		l, ok := cf.steps[id]
		if !ok || l.pgid != 0 && !groupGone(procRecord{PGID: l.pgid}) {
			continue
		}
		ids = append(ids, id)
		delete(cf.forgotten, id)
		delete(cf.steps, id)
	}
	return ids
}

// add remembers steps of cluster c that ListSteps found finished for good.
func (f *finishedSteps) add(c *clusterRecord, steps []listedStep) {
	if len(steps) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	cf := f.clusters[c.ID]
	if cf == nil || !cf.createdAt.Equal(c.CreatedAt) {
		cf = &clusterFinished{createdAt: c.CreatedAt, steps: make(map[string]listedStep, len(steps))}
		f.clusters[c.ID] = cf
	}
	for _, l := range steps {
		l.step = copyStep(l.step)
		cf.steps[l.step.ID] = l
	}
}

// drop forgets a cluster that has ended or is not found.
func (f *finishedSteps) drop(clusterID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.clusters, clusterID)
}

// copyStep gives the caller an ExitCode of its own, so that nothing it
// does to the answer reaches the cache.
func copyStep(s provider.Step) provider.Step {
	if s.ExitCode != nil {
		code := *s.ExitCode
		s.ExitCode = &code
	}
	return s
}

// groupGone reports whether no process is left in the step's process
// group. A process that outlived the group's leader (a child of the
// command) could still write the output whose time dates a vanished step.
// Zombies count as present, and so does a stranger that got the group's
// number again: such a step stays out of the cache, which costs a read per
// poll and nothing else.
func groupGone(r procRecord) bool {
	return errors.Is(syscall.Kill(-r.PGID, 0), syscall.ESRCH)
}
