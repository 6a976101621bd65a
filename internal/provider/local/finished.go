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
}

// listedStep is one step as ListSteps reports it, and what it sorts by.
type listedStep struct {
	step      provider.Step
	submitted time.Time
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
	if len(known) < len(cf.steps) {
		listed := make(map[string]bool, len(ids))
		for _, id := range ids {
			listed[id] = true
		}
		for id := range cf.steps {
			if !listed[id] {
				delete(cf.steps, id)
			}
		}
	}
	return known, read
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
