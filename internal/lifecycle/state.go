package lifecycle

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/learn"
	"github.com/berthhq/berth/internal/provider"
	"github.com/berthhq/berth/internal/scheduler"
)

// Timings of the policy.
const (
	// DefaultRetryBackoff is the wait before the first retry after a step
	// failure; it doubles with each further failure up to MaxRetryBackoff.
	DefaultRetryBackoff = 5 * time.Second
	MaxRetryBackoff     = 5 * time.Minute
	// DefaultCallRetry is the first wait before a failed provider call is
	// tried again; it doubles up to callRetryMax.
	DefaultCallRetry = time.Second
	callRetryMax     = time.Minute
	// giveUpAfter failed tries of a create or submit end the cluster or
	// attempt; throttling does not count.
	giveUpAfter = 5
	// cancelResend is how long a cancelled step may keep running before
	// the cancel is sent again.
	cancelResend = 30 * time.Second
	// terminateResend is how long a cluster whose termination was taken
	// may stay before it is asked again.
	terminateResend = time.Minute
	// unobservedGrace is how long a cluster restored from the store past
	// its boot_timeout is spared while its watcher has not reported.
	unobservedGrace = 2 * time.Minute
	// Failed creations hold a pool's next cluster back this long, doubling.
	startBackoffMin = 30 * time.Second
	startBackoffMax = 10 * time.Minute
)

// Config is what the policy is told rather than decides.
type Config struct {
	// RetryBackoff is the first wait after a step failure.
	RetryBackoff time.Duration
	// CallRetry is the first wait after a failed provider call.
	CallRetry time.Duration
	// NewID makes the ids of new clusters.
	NewID func(prefix string, now time.Time) string
	// KeepWhole is how many ready jobs a pool keeps whole before it keeps
	// dormant ones as their place only (dormant.go); 0 means keepWhole.
	KeepWhole int
}

// State is everything the policy decides over: the jobs that have not
// ended, the clusters that are not gone, the pools, and the bookkeeping of
// the provider calls in flight. The loop owns it; each of its methods
// changes it as a step of policy and records what it did in the pass's
// Effects. None reads a clock, starts anything or does I/O: time comes in
// as an argument, and what is to be done goes out as Effects.
type State struct {
	cfg       Config
	jobs      map[string]*berth.Job
	clusters  map[string]*Cluster
	pools     map[string]*Pool
	poolNames []string
	affinity  map[string]string
	// stopping holds running jobs whose attempt is being stopped, and why.
	stopping map[string]berth.Reason
	// inflight are the calls started and not yet answered, by Key;
	// retryAt and tries the backoff of failed ones.
	inflight map[string]bool
	retryAt  map[string]time.Time
	tries    map[string]int
	// held are the step failures waiting out their attribution grace, by
	// job.
	held map[string]held
	// The indexes of the jobs (see index.go): each pool's queue, the jobs
	// running on each cluster, and each pool's count of running jobs.
	queues   map[string]*queue
	running  map[string]map[string]*berth.Job
	runningN map[string]int
	// runningSorted caches runningJobs' order, clusterList Clusters'; nil
	// when to be made again.
	runningSorted []*berth.Job
	clusterList   []*Cluster
	// expectVer and expectCache: see expected.
	expectVer   uint64
	expectCache expectCache
	// foresee is what the pipelines taught so far of what follows what
	// (foresight.go); a Restore keeps it: it is knowledge, not state to
	// roll back.
	foresee foresight
	// now is the time of the pass in progress.
	now time.Time
	fx  Effects
	// model is what was learned of run and boot times, waits the last
	// plan's reasons, started the clusters the pass in progress started,
	// in plan order, and scratch the forecast's buffers (see
	// forecast.go).
	model   *learn.Model
	waits   []scheduler.Wait
	started []string
	scratch scratch
}

// Pool is a configured pool and what the policy keeps about it.
type Pool struct {
	Pool berth.Pool
	// State is the pool's stored state: fallback and block.
	State berth.PoolState
	// Spec fingerprints the pool's configuration: a pool blocked under
	// another one is unblocked.
	Spec string
	// CanFind says the provider can look up a cluster by Berth's id
	// (provider.Finder).
	CanFind bool
	// Grace is how long a step failure waits before it is charged to the
	// job, in case the loss of its cluster is reported after it
	// (provider.Attributor); zero charges it at once.
	Grace time.Duration
	// CreateFailures counts the failed creations in a row, and StartAfter
	// is when the next cluster may start; both reset when a cluster comes
	// up.
	CreateFailures int
	StartAfter     time.Time
	// GuessAfter is when the pool may start clusters for expected work
	// again after a person ended one of its clusters (see byHand).
	GuessAfter time.Time
	// Ended counts the pool's clusters that ended since the service
	// started, by terminal state.
	Ended map[berth.ClusterState]int
	// BootTime is how long a new cluster is expected to take to be seen
	// ready, as configured, until one has been; zero when unknown.
	BootTime time.Duration
}

// Cluster is a live cluster and what the policy knows of it beyond what
// is stored.
type Cluster struct {
	C    berth.Cluster
	Pool *Pool
	// Observed is set once the cluster's watcher has reported since this
	// service started. Nothing is submitted to a cluster before that, so a
	// step submitted before a crash is adopted by name, not started again.
	Observed bool
	// RestoredAt is when the cluster was loaded from the store; zero for
	// clusters this service started.
	RestoredAt time.Time
	// Released is set once the provider took the cluster's termination:
	// until then a terminating cluster counts against max_clusters.
	Released bool
	// Steps is the latest report's steps by name.
	Steps map[string]provider.Step
}

// Effects is what one pass decided: the changes to commit, in one
// transaction, and what to do once they are committed.
type Effects struct {
	DirtyJobs     map[string]bool
	DirtyClusters map[string]bool
	DirtyPools    map[string]bool
	DirtyAffinity map[string]string
	Events        []berth.Event
	// EndedJobs and EndedClusters leave the state after the commit.
	EndedJobs     []*berth.Job
	EndedClusters []*Cluster
	// Calls are the provider calls to make.
	Calls []Call
	// Watch lists clusters that got a provider id: their watchers start.
	// Poke lists clusters whose watcher should look now.
	Watch, Poke []string
	// For the metrics and the log, once committed:
	Submitted     []string
	Started       []*berth.Job
	AttemptsEnded []AttemptEnd
	ClustersEnded []berth.Cluster
	Blocked       []string
	Illegal       []string
	Logs          []LogLine
	// Readied lists the clusters that came up, for the learned boot
	// times.
	Readied []*Cluster
	// StepsEnded lists, by cluster, the provider ids of the steps whose
	// end the pass recorded: once committed, their provider need not list
	// them again (provider.Forgetter).
	StepsEnded map[string][]string
	// Wake asks for another pass soon.
	Wake bool
	// WakeAt is when something comes due that a pass must see.
	WakeAt time.Time
}

// AttemptEnd is an attempt that ended, for the metrics.
type AttemptEnd struct {
	Pool   string
	Reason berth.Reason
}

// LogLine is a line for the service's log.
type LogLine struct {
	Level slog.Level
	Msg   string
	Args  []any
}

// New returns the state of a service that knows the given pools, and
// nothing else yet.
func New(cfg Config, pools []*Pool) *State {
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = DefaultRetryBackoff
	}
	if cfg.CallRetry <= 0 {
		cfg.CallRetry = DefaultCallRetry
	}
	if cfg.NewID == nil {
		cfg.NewID = berth.NewID
	}
	s := &State{
		cfg: cfg, jobs: map[string]*berth.Job{}, clusters: map[string]*Cluster{}, pools: map[string]*Pool{},
		affinity: map[string]string{}, stopping: map[string]berth.Reason{},
		inflight: map[string]bool{}, retryAt: map[string]time.Time{}, tries: map[string]int{}, held: map[string]held{},
		queues: map[string]*queue{}, running: map[string]map[string]*berth.Job{}, runningN: map[string]int{},
		foresee: newForesight(),
	}
	for _, p := range pools {
		if p.Ended == nil {
			p.Ended = map[berth.ClusterState]int{}
		}
		s.pools[p.Pool.Name] = p
		s.poolNames = append(s.poolNames, p.Pool.Name)
	}
	sort.Strings(s.poolNames)
	s.reset()
	return s
}

// Restore loads stored state, as at start or after a failed commit: the
// jobs that have not ended (the dormant ones as their place only, see
// dormant.go), the live clusters, pool state and affinity.
// Calls in flight stay counted: they are real, and their results still
// come back. A pool blocked under another configuration is unblocked. It
// returns the clusters with a provider id, whose watchers are to start.
// The State keeps the jobs' elements: the caller hands the slice over.
func (s *State) Restore(jobs []berth.Job, dormant []berth.DormantJob, clusters []berth.Cluster, pools []berth.PoolState, affinity map[string]string, now time.Time) (watch []string) {
	s.now = now
	s.jobs, s.clusters, s.clusterList = map[string]*berth.Job{}, map[string]*Cluster{}, nil
	s.affinity = affinity
	if s.affinity == nil {
		s.affinity = map[string]string{}
	}
	s.stopping, s.retryAt, s.tries, s.held = map[string]berth.Reason{}, map[string]time.Time{}, map[string]int{}, map[string]held{}
	s.reset()
	s.queues, s.running, s.runningN, s.runningSorted = map[string]*queue{}, map[string]map[string]*berth.Job{}, map[string]int{}, nil
	// The jobs stay where the store read them: a copy of each would
	// double what a long queue costs at a restart. (The array lives until
	// the last of them ends.)
	for i := range jobs {
		j := &jobs[i]
		s.jobs[j.ID] = j
		s.index(j)
	}
	for _, d := range dormant {
		s.keepDormant(d)
	}
	// Pool state is what the store has, and nothing a failed pass left
	// behind.
	for _, p := range s.pools {
		p.State = berth.PoolState{Pool: p.Pool.Name}
	}
	for _, ps := range pools {
		if p, ok := s.pools[ps.Pool]; ok {
			p.State = ps
		}
	}
	for _, name := range s.poolNames {
		p := s.pools[name]
		if p.State.Blocked() && p.State.BlockedSpec != p.Spec {
			s.event("", "", "pool_unblocked", fmt.Sprintf("pool %s unblocked: its configuration changed since it was blocked (%s)", name, p.State.BlockedReason))
			p.State.BlockedAt, p.State.BlockedReason, p.State.BlockedSpec = time.Time{}, "", ""
			p.State.UnblockedAt = now
			s.fx.DirtyPools[name] = true
		}
	}
	for _, c := range clusters {
		rt := &Cluster{C: c, Pool: s.pools[c.Pool], RestoredAt: now}
		s.clusters[c.ID] = rt
		s.clusterList = nil
		if c.ProviderID != "" {
			watch = append(watch, c.ID)
		}
	}
	return watch
}

// reset starts the effects of a new pass.
func (s *State) reset() {
	s.fx = Effects{
		DirtyJobs: map[string]bool{}, DirtyClusters: map[string]bool{}, DirtyPools: map[string]bool{},
		DirtyAffinity: map[string]string{},
	}
}

// forgetCall drops the retry bookkeeping of a call whose job or cluster
// is gone: nothing will ask for it again, and a long-running service must
// not keep an entry per cluster it ever terminated.
func (s *State) forgetCall(key string) {
	if !s.inflight[key] {
		delete(s.retryAt, key)
		delete(s.tries, key)
	}
}

// Begin starts a pass at now.
func (s *State) Begin(now time.Time) { s.now = now }

// Effects returns what the pass so far decided.
func (s *State) Effects() *Effects { return &s.fx }

// Committed drops what left the state with the pass's commit and starts
// the effects of the next pass.
func (s *State) Committed() {
	s.learnCommitted()
	for _, j := range s.fx.EndedJobs {
		delete(s.jobs, j.ID)
		delete(s.stopping, j.ID)
		for _, a := range j.Attempts {
			for _, st := range a.Steps {
				name := berth.StepName(j.ID, a.N, st.Index)
				s.forgetCall("submit:" + name)
				s.forgetCall("cancel:" + name)
			}
		}
	}
	for _, c := range s.fx.EndedClusters {
		c.Pool.Ended[c.C.State]++
		delete(s.clusters, c.C.ID)
		s.clusterList = nil
		for _, kind := range []string{"create:", "terminate:", "find:"} {
			s.forgetCall(kind + c.C.ID)
		}
	}
	s.reset()
}

// Job returns a live job, or nil.
func (s *State) Job(id string) *berth.Job { return s.jobs[id] }

// Cluster returns a live cluster, or nil.
func (s *State) Cluster(id string) *Cluster { return s.clusters[id] }

// Pool returns a configured pool, or nil.
func (s *State) Pool(name string) *Pool { return s.pools[name] }

// Clusters returns the live clusters in id order.
//
// The list is kept until a cluster comes or goes; the caller must not
// change it.
func (s *State) Clusters() []*Cluster {
	if s.clusterList == nil {
		out := make([]*Cluster, 0, len(s.clusters))
		for _, id := range keys(s.clusters) {
			out = append(out, s.clusters[id])
		}
		s.clusterList = out
	}
	return s.clusterList
}

// Jobs calls fn for every live job, in no order.
func (s *State) Jobs(fn func(*berth.Job)) {
	for _, j := range s.jobs {
		fn(j)
	}
}

// Submitted takes in a job the store has stored since the last pass.
func (s *State) Submitted(j berth.Job) {
	if j.State.Terminal() {
		return
	}
	if _, ok := s.jobs[j.ID]; ok {
		return
	}
	if q := s.queues[j.Pool]; q != nil && q.dormant > 0 && q.ready.Has(entryOf(&j)) {
		return // held dormant already
	}
	if s.behindWhole(&j) {
		s.keepDormant(berth.DormantJob{ID: j.ID, Pool: j.Pool, Priority: j.Priority, CreatedAt: j.CreatedAt})
	} else {
		s.jobs[j.ID] = &j
		s.index(&j)
	}
	if s.foresee.submitted(&j, s.now) {
		// What is expected to arrive is not in the queue: only a job of
		// a run changes it (see expected).
		s.expectVer++
	}
	// The store wrote its queued event with the job (store.QueuedEvent):
	// a submission costs one commit.
	s.fx.Submitted = append(s.fx.Submitted, j.Pool)
}

// CancelRequested marks a live job as to be cancelled.
func (s *State) CancelRequested(id string) {
	j, ok := s.jobs[id]
	if !ok || j.CancelRequested {
		return
	}
	s.unindex(j)
	j.CancelRequested = true
	s.index(j)
}

// RunningOn counts a cluster's running jobs.
func (s *State) RunningOn(cluster string) int { return s.runningOn(cluster) }

// keys returns a map's keys in order: whatever the loop does for many
// jobs or clusters, it does in id order, so that a simulation replays.
func keys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// moveJob moves a job to another state, checked against the domain's one
// table of moves. An illegal move is a bug: it is logged and counted, and
// not made.
func (s *State) moveJob(j *berth.Job, to berth.JobState) bool {
	if !j.State.CanMove(to) {
		s.illegal("job", j.ID, string(j.State), string(to))
		return false
	}
	s.unindex(j)
	j.State = to
	s.index(j)
	s.fx.DirtyJobs[j.ID] = true
	return true
}

// moveCluster is moveJob for a cluster.
func (s *State) moveCluster(c *Cluster, to berth.ClusterState) bool {
	if !c.C.State.CanMove(to) {
		s.illegal("cluster", c.C.ID, string(c.C.State), string(to))
		return false
	}
	c.C.State = to
	s.fx.DirtyClusters[c.C.ID] = true
	return true
}

func (s *State) illegal(kind, id, from, to string) {
	s.log(slog.LevelError, "illegal state change refused; this is a bug", "kind", kind, "id", id, "from", from, "to", to)
	s.fx.Illegal = append(s.fx.Illegal, kind)
}

// jobsOn returns the jobs with a running attempt on a cluster, in a stable
// order.
func (s *State) jobsOn(clusterID string) []*berth.Job {
	var out []*berth.Job
	for _, j := range s.running[clusterID] {
		if a := j.CurrentAttempt(); a != nil && a.ClusterID == clusterID {
			out = append(out, j)
		}
	}
	slices.SortFunc(out, func(a, b *berth.Job) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// TrackedSteps returns the steps under way of the running attempts on a
// cluster, for a provider that must be told which steps to watch
// (provider.StepTracker). Only the step under way: the earlier ones are
// known to have succeeded.
func (s *State) TrackedSteps(clusterID string) []provider.TrackedStep {
	var out []provider.TrackedStep
	for _, j := range s.jobsOn(clusterID) {
		a := j.CurrentAttempt()
		if cur := a.Steps[len(a.Steps)-1]; !cur.State.Terminal() {
			out = append(out, provider.TrackedStep{ID: cur.ProviderID, Name: berth.StepName(j.ID, a.N, cur.Index), Since: a.StartedAt})
		}
	}
	return out
}

// Strays returns the clusters of a provider's list (provider.Lister) that
// Berth does not know: no live cluster has their id, or the live one has
// another provider id (a second cluster started for one id). A cluster
// whose creation has not answered yet is known.
func (s *State) Strays(listed []provider.Listed) []provider.Listed {
	var out []provider.Listed
	for _, l := range listed {
		if c := s.clusters[l.ClusterID]; c != nil && (c.C.ProviderID == "" || c.C.ProviderID == l.ID) {
			continue
		}
		out = append(out, l)
	}
	return out
}

// event records one entry of history, committed with the pass and
// stamped with its time.
func (s *State) event(jobID, clusterID, kind, msg string) {
	s.fx.Events = append(s.fx.Events, berth.Event{At: s.now, JobID: jobID, ClusterID: clusterID, Kind: kind, Message: msg})
}

// log notes a line for the service's log, written after the pass.
func (s *State) log(level slog.Level, msg string, args ...any) {
	s.fx.Logs = append(s.fx.Logs, LogLine{Level: level, Msg: msg, Args: args})
}

// Unblock lifts a pool's block, by request. Whoever unblocks says the spec
// works as of now, so it also keeps clusters started before from blocking
// the pool again.
func (s *State) Unblock(name string) error {
	p, ok := s.pools[name]
	if !ok {
		return berth.Errorf(berth.ErrNotFound, "pool %q not found", name)
	}
	p.State.UnblockedAt = s.now
	s.fx.DirtyPools[name] = true
	if !p.State.Blocked() {
		return nil
	}
	s.event("", "", "pool_unblocked", fmt.Sprintf("pool %s unblocked by request; it was blocked at %s: %s",
		name, p.State.BlockedAt.UTC().Format(time.RFC3339), p.State.BlockedReason))
	p.State.BlockedAt, p.State.BlockedReason, p.State.BlockedSpec = time.Time{}, "", ""
	p.CreateFailures, p.StartAfter = 0, time.Time{}
	s.fx.DirtyPools[name] = true
	return nil
}

// Record adds an event of the service's own (not of a job or cluster) to
// the pass.
func (s *State) Record(kind, msg string) { s.event("", "", kind, msg) }

// Due reports whether a call may be made now: it is not in flight, and not
// backing off after a failure.
func (s *State) Due(c Call) bool {
	key := c.Key()
	return !s.inflight[key] && !s.now.Before(s.retryAt[key])
}

// Started records that a call was made; its Result is owed.
func (s *State) Started(c Call) { s.inflight[c.Key()] = true }
