package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/clock"
	"github.com/berthhq/berth/internal/lifecycle"
	"github.com/berthhq/berth/internal/provider"
)

// maxPollBackoff caps how far a watcher slows down after errors and
// throttling.
const maxPollBackoff = 2 * time.Minute

// report is what a watcher saw of its cluster.
type report struct {
	lifecycle.Report
	// from is the watcher that sent it: after a reload, reports of a
	// replaced watcher are ignored.
	from *watcher
}

// watcher is the one poller of a cluster: it asks the provider about it
// every poll interval (or at once when poked) and reports to the loop only
// when something changed, so an unchanged cluster costs the loop nothing.
// It is a chain of tasks on the executor, a poll then a timer then a poll,
// never more than one poll in flight, and never blocks.
type watcher struct {
	s       *Service
	id, pid string
	pool    string
	prov    provider.Provider
	log     *slog.Logger

	mu      sync.Mutex
	stopped bool
	polling bool
	poked   bool
	// force makes the next good poll report, changed or not.
	force bool
	timer clock.Timer

	// Touched only by the poll in flight: what the last report sent said
	// (see changed).
	last     string
	lastStep map[string]stepSeen
	wait     time.Duration
	starting bool
}

// watch starts the watcher of a live cluster that has a provider id.
func (l *loop) watch(id string) {
	c := l.st.Cluster(id)
	if c == nil || c.C.ProviderID == "" {
		return
	}
	if old := l.watchers[id]; old != nil {
		old.stop()
	}
	prov := l.s.pools[c.C.Pool].prov
	if t, ok := prov.(provider.StepTracker); ok {
		t.TrackSteps(c.C.ProviderID, l.st.TrackedSteps(id))
	}
	w := &watcher{
		s: l.s, id: id, pid: c.C.ProviderID, pool: c.C.Pool, prov: prov,
		log: l.s.log.With("cluster_id", id, "provider_id", c.C.ProviderID), wait: pollInterval(prov),
	}
	l.watchers[id] = w
	if _, ok := prov.(provider.Notifier); ok {
		l.s.notices.add(w)
	}
	w.mu.Lock()
	w.polling = true
	w.mu.Unlock()
	if !l.s.spawn(w.poll) {
		w.stop()
	}
}

func (w *watcher) stop() {
	w.s.notices.remove(w)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
}

// poke asks for a poll now rather than at the next interval.
func (w *watcher) poke() { w.pollNow(true) }

// nudge asks for a poll now on a provider's notice. Unlike a poke it asks
// for no report: nobody waits on this poll, which reports only what
// changed, as a timed one does.
func (w *watcher) nudge() { w.pollNow(false) }

func (w *watcher) pollNow(force bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if force {
		// The loop wants to hear back even if nothing changed: it may be
		// waiting on a fresh look (a held step failure).
		w.force = true
	}
	switch {
	case w.stopped:
	case w.polling:
		w.poked = true
	case w.timer != nil && w.timer.Stop():
		w.timer = nil
		w.polling = true
		if !w.s.spawn(w.poll) {
			w.polling = false
		}
	}
}

// fire is the timer's end: the next poll.
func (w *watcher) fire() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped || w.polling {
		return
	}
	w.timer = nil
	w.polling = true
	if !w.s.spawn(w.poll) {
		w.polling = false
	}
}

func (w *watcher) poll() {
	w.mu.Lock()
	stopped := w.stopped
	w.mu.Unlock()
	if stopped {
		return
	}
	ctx, cancel := context.WithTimeout(w.s.ctx, callTimeout)
	r, err := poll(ctx, w.prov, w.id, w.pid, !w.starting)
	cancel()
	r.from = w
	switch {
	case w.s.ctx.Err() != nil:
		return
	case err != nil:
		w.wait = min(2*w.wait, maxPollBackoff)
		msg := "provider poll failed"
		if errors.Is(err, berth.ErrThrottled) {
			msg = "provider throttled the poll; slowing down"
		}
		w.log.Warn(msg, "err", err, "next_poll", w.wait)
	default:
		// The interval is asked again each time: a provider that shares
		// its API budget among clusters (EMR) slows down as they grow.
		w.wait, w.starting = pollInterval(w.prov), r.Cluster.State == berth.ClusterStarting
		w.mu.Lock()
		force := w.force
		w.force = false
		w.mu.Unlock()
		if w.changed(r) || force {
			w.s.post(r)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.polling = false
	if w.stopped {
		return
	}
	wait := w.wait
	if w.poked {
		w.poked, wait = false, 0
	}
	w.timer = w.s.after(wait, w.fire)
}

// pollInterval is how often prov wants its clusters polled.
func pollInterval(prov provider.Provider) time.Duration {
	if p, ok := prov.(provider.Poller); ok {
		return p.PollInterval()
	}
	return provider.DefaultPollInterval
}

// poll asks the provider about one cluster: one ListSteps (unless the
// cluster was starting at the last poll, when it can have none) and one
// DescribeCluster — never a call per step.
//
// Steps are listed before the cluster is described, and a provider marks a
// cluster dead before it kills its steps. So a step that failed because its
// cluster died always comes in a report that also says the cluster died,
// and is charged to the loss, not to the job.
func poll(ctx context.Context, prov provider.Provider, id, pid string, list bool) (report, error) {
	r := report{Report: lifecycle.Report{ClusterID: id}}
	var listErr error
	if list {
		r.Steps, listErr = prov.ListSteps(ctx, pid)
	}
	var err error
	if r.Cluster, err = prov.DescribeCluster(ctx, pid); err != nil {
		return r, fmt.Errorf("describe cluster: %w", err)
	}
	switch {
	case !list || r.Cluster.State == berth.ClusterStarting:
		r.Steps = nil
	case listErr != nil && !r.Cluster.State.Terminal():
		return r, fmt.Errorf("list steps: %w", listErr)
	case listErr == nil:
		r.Listed = true
	}
	return r, nil
}

// stepSeen is what a report said of one step.
type stepSeen struct {
	name  string
	state berth.StepState
	exit  int // -1 without an exit code
}

// changed reports whether r says anything the last report sent did not,
// and remembers r. A step that ended and then left the provider's list (a
// provider lists ended steps only for a while) is no news: the loop knows
// how it ended, and a report for it would cost a pass for nothing.
func (w *watcher) changed(r report) bool {
	cluster := string(r.Cluster.State) + "\x00" + r.Cluster.Reason + "\x00" + strconv.FormatBool(r.Listed)
	news := cluster != w.last
	w.last = cluster
	now := make(map[string]stepSeen, len(r.Steps))
	for _, s := range r.Steps {
		seen := stepSeen{name: s.Name, state: s.State, exit: -1}
		if s.ExitCode != nil {
			seen.exit = *s.ExitCode
		}
		now[s.ID] = seen
		if old, ok := w.lastStep[s.ID]; !ok || old != seen {
			news = true
		}
	}
	for id, old := range w.lastStep {
		if _, listed := now[id]; !listed && !old.state.Terminal() {
			news = true
		}
	}
	w.lastStep = now
	return news
}

// notices finds the watchers of the clusters that providers' notices name
// (provider.Notifier), by pool and provider id. A notice comes from the
// provider's goroutine, not from a pass, so it cannot read the loop's
// watchers, which only passes touch; watch and stop keep this map beside
// them. The notice pokes the watcher itself rather than posting an input
// for a pass to do it: a pass would only add its own wait (the passes and
// the commit before it) ahead of the poll, and what the poll finds reaches
// the loop as a report either way. A notice that races with a watcher
// being stopped or replaced finds the old watcher, which ignores it once
// stopped, or none; the new watcher polls at once when it starts anyway.
type notices struct {
	mu       sync.Mutex
	watchers map[noticeKey]*watcher
}

type noticeKey struct{ pool, pid string }

func (n *notices) add(w *watcher) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.watchers == nil {
		n.watchers = map[noticeKey]*watcher{}
	}
	n.watchers[noticeKey{w.pool, w.pid}] = w
}

// remove forgets w, unless a newer watcher of its cluster replaced it.
func (n *notices) remove(w *watcher) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if k := (noticeKey{w.pool, w.pid}); n.watchers[k] == w {
		delete(n.watchers, k)
	}
}

// notified pokes the watcher of the pool's cluster pid, if there is one.
func (n *notices) notified(pool, pid string) {
	n.mu.Lock()
	w := n.watchers[noticeKey{pool, pid}]
	n.mu.Unlock()
	// Outside n.mu, which guards the map only: notices for other clusters
	// need not wait for this poke.
	if w != nil {
		w.nudge()
	}
}

// listen asks the pools' providers that can notify to tell the service
// when one of their clusters changes. A later service's Start on the same
// provider replaces the registration; until then, notices for a stopped
// service find no watchers.
func (s *Service) listen() {
	for _, name := range s.poolNames {
		if n, ok := s.pools[name].prov.(provider.Notifier); ok {
			n.Notify(func(pid string) { s.notices.notified(name, pid) })
		}
	}
}
