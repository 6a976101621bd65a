package emr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/emr"
	"github.com/aws/aws-sdk-go-v2/service/emr/types"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/clock"
	"github.com/berthhq/berth/internal/config"
	"github.com/berthhq/berth/internal/provider"
)

// API is the part of EMR's client the provider calls. *emr.Client has it;
// so may a test's stand-in.
type API interface {
	RunJobFlow(ctx context.Context, in *emr.RunJobFlowInput, opts ...func(*emr.Options)) (*emr.RunJobFlowOutput, error)
	DescribeCluster(ctx context.Context, in *emr.DescribeClusterInput, opts ...func(*emr.Options)) (*emr.DescribeClusterOutput, error)
	ListClusters(ctx context.Context, in *emr.ListClustersInput, opts ...func(*emr.Options)) (*emr.ListClustersOutput, error)
	TerminateJobFlows(ctx context.Context, in *emr.TerminateJobFlowsInput, opts ...func(*emr.Options)) (*emr.TerminateJobFlowsOutput, error)
	AddJobFlowSteps(ctx context.Context, in *emr.AddJobFlowStepsInput, opts ...func(*emr.Options)) (*emr.AddJobFlowStepsOutput, error)
	ListSteps(ctx context.Context, in *emr.ListStepsInput, opts ...func(*emr.Options)) (*emr.ListStepsOutput, error)
	CancelSteps(ctx context.Context, in *emr.CancelStepsInput, opts ...func(*emr.Options)) (*emr.CancelStepsOutput, error)
}

// Defaults of Options.
const (
	// DefaultPollBase is how often a cluster is polled while the fleet is
	// small enough for EMR's limits to allow it.
	DefaultPollBase = 15 * time.Second
	// DefaultCancelGrace is how long a step has to stop after
	// SEND_INTERRUPT before it is sent TERMINATE_PROCESS.
	DefaultCancelGrace = 30 * time.Second
	// DefaultAttributionGrace is how long a failed step is held before it
	// is charged to its job: EMR fails the steps of a node it lost before
	// it says the cluster lost instances, often minutes later.
	DefaultAttributionGrace = 3 * time.Minute
)

// maxActiveSteps is EMR's limit of pending and running steps per cluster.
const maxActiveSteps = 256

// listBatch is the most step ids ListSteps takes in one call.
const listBatch = 10

// clockSkew is how far EMR's clock and Berth's may disagree: a search for
// a step added since some time looks this much further back.
const clockSkew = 15 * time.Minute

// activeClusterStates are the states of a cluster that is not gone.
var activeClusterStates = []types.ClusterState{
	types.ClusterStateStarting, types.ClusterStateBootstrapping, types.ClusterStateRunning,
	types.ClusterStateWaiting, types.ClusterStateTerminating,
}

// activeStepStates are the states of a step that has not ended.
var activeStepStates = []types.StepState{types.StepStatePending, types.StepStateCancelPending, types.StepStateRunning}

// Options configures one pool's provider.
type Options struct {
	// Pool is the pool's name, put in the tags of its clusters.
	Pool string
	// Primary is the pool's spec; Fallback its fallback spec, or nil.
	Primary, Fallback *config.EMRSpec
	// IdleTimeout is the pool's idle_timeout; clusters end themselves a
	// little after it if Berth is not there to end them.
	IdleTimeout time.Duration
	// Installation is this Berth's installation id (store.Installation).
	Installation string
	// EMR is the client; S3 reads step logs (nil: logs are not read).
	EMR API
	S3  Objects
	// Limiter is the rate limiter the EMR client's calls draw on, shared by
	// the pools of an account and region; the provider asks it how many
	// clusters the fleet has, to pace its polls. Nil: a limiter of its own.
	Limiter *Limiter
	// PollBase, CancelGrace and AttributionGrace default to the constants
	// above.
	PollBase         time.Duration
	CancelGrace      time.Duration
	AttributionGrace time.Duration
	Clock            clock.Clock
	Log              *slog.Logger
}

// Provider runs one pool's clusters on EMR.
type Provider struct {
	o   Options
	clk clock.Clock
	log *slog.Logger

	// scan serialises scans of the account's clusters.
	scan sync.Mutex

	mu sync.Mutex
	// byBerth maps Berth's cluster ids to EMR's, for the clusters of this
	// installation and pool found by a scan or started here.
	byBerth map[string]string
	// scanned is true once the account's live clusters were scanned, so
	// that byBerth knows every one started before this process; doubt
	// holds the cluster ids whose RunJobFlow may have taken effect without
	// an answer, which only a new scan can tell.
	scanned bool
	doubt   map[string]time.Time
	// clusters holds what the provider knows of each EMR cluster.
	clusters map[string]*cluster
	creating keyedMutex
}

// keyedMutex is a mutex per key.
type keyedMutex struct {
	mu   sync.Mutex
	held map[string]chan struct{}
}

// lock waits until key is free, takes it and returns its release.
func (k *keyedMutex) lock(key string) (unlock func()) {
	for {
		k.mu.Lock()
		if k.held == nil {
			k.held = map[string]chan struct{}{}
		}
		ch, busy := k.held[key]
		if !busy {
			ch = make(chan struct{})
			k.held[key] = ch
			k.mu.Unlock()
			return func() {
				k.mu.Lock()
				delete(k.held, key)
				k.mu.Unlock()
				close(ch)
			}
		}
		k.mu.Unlock()
		<-ch
	}
}

// cluster is what the provider knows of one EMR cluster's steps.
type cluster struct {
	mu sync.Mutex
	// state is the cluster's state at the last DescribeCluster ("" before
	// the first), and ended when it was first seen ended.
	state berth.ClusterState
	ended time.Time
	// logURI is where EMR writes the cluster's logs.
	logURI string
	// steps by EMR id, and the ids by name.
	steps  map[string]*step
	byName map[string]string
	// known is the time since which every step of the cluster is in
	// steps: zero for a cluster this process started (all of them),
	// the end of time until a search has gone back (an adopted cluster).
	known time.Time
	// doubt holds the names of steps whose AddJobFlowSteps may have taken
	// effect without an answer, and when the call was made.
	doubt map[string]time.Time
	// unnamed holds the steps a restarted service tracks by name only,
	// to be looked for by the next ListSteps.
	unnamed []provider.StepRequest
}

// step is one step as last seen.
type step struct {
	provider.Step
	// final is true once the step ended: it is never asked about again;
	// endedSeen is when the provider first saw it ended.
	final     bool
	endedSeen time.Time
	// interrupted is when SEND_INTERRUPT was sent, zero if it was not;
	// killed is true once TERMINATE_PROCESS was.
	interrupted time.Time
	killed      bool
	// misses counts the polls that asked EMR about the step by id and got
	// nothing back: an id EMR does not know (a stale one a restarted
	// service tracked) is dropped after maxMisses, not asked about forever.
	misses int
}

// maxMisses is how many answers without a step the provider takes before
// it forgets the step.
const maxMisses = 3

// farFuture stands for "nothing known yet" in cluster.known.
var farFuture = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// New returns a pool's provider.
func New(o Options) (*Provider, error) {
	if o.Primary == nil {
		return nil, errors.New("emr: no spec")
	}
	if o.EMR == nil {
		return nil, errors.New("emr: no client")
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Limiter == nil {
		o.Limiter = NewLimiter(o.Clock)
	}
	if o.PollBase <= 0 {
		o.PollBase = DefaultPollBase
	}
	if o.CancelGrace <= 0 {
		o.CancelGrace = DefaultCancelGrace
	}
	if o.AttributionGrace <= 0 {
		o.AttributionGrace = DefaultAttributionGrace
	}
	return &Provider{o: o, clk: o.Clock, log: o.Log, byBerth: map[string]string{}, doubt: map[string]time.Time{},
		clusters: map[string]*cluster{}}, nil
}

// The capabilities the EMR provider has beyond Provider.
var (
	_ provider.Provider    = (*Provider)(nil)
	_ provider.Finder      = (*Provider)(nil)
	_ provider.StepChecker = (*Provider)(nil)
	_ provider.LogReader   = (*Provider)(nil)
	_ provider.Poller      = (*Provider)(nil)
	_ provider.Attributor  = (*Provider)(nil)
	_ provider.StepTracker = (*Provider)(nil)
	_ provider.Lister      = (*Provider)(nil)
)

// CheckStep says whether EMR can run a step.
func (p *Provider) CheckStep(st berth.Step) error { return checkStep(st) }

// PollInterval paces the polls of this pool's clusters so that the whole
// fleet of the account and region stays within EMR's limits.
func (p *Provider) PollInterval() time.Duration {
	return p.o.Limiter.PollInterval(p.o.PollBase)
}

// AttributionGrace is how long a failed step may precede its cluster's
// reported loss.
func (p *Provider) AttributionGrace() time.Duration { return p.o.AttributionGrace }

// cluster returns the record of an EMR cluster, making it for an adopted
// one, whose steps are not known.
func (p *Provider) cluster(id string) *cluster {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.clusters[id]
	if c == nil {
		c = &cluster{steps: map[string]*step{}, byName: map[string]string{}, known: farFuture, doubt: map[string]time.Time{}}
		p.clusters[id] = c
	}
	return c
}

// keepEnded is how long the provider remembers the steps of a cluster
// that ended: long enough for the service to read how they ended.
const keepEnded = time.Hour

// purge forgets the clusters that ended more than keepEnded ago.
func (p *Provider) purge(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, c := range p.clusters {
		c.mu.Lock()
		old := !c.ended.IsZero() && now.Sub(c.ended) > keepEnded
		c.mu.Unlock()
		if old {
			delete(p.clusters, id)
		}
	}
}

// CreateCluster starts a cluster with RunJobFlow, unless one tagged with
// req.ClusterID is alive: the one a crash kept Berth from recording.
func (p *Provider) CreateCluster(ctx context.Context, req provider.CreateRequest) (string, error) {
	// One creation per cluster id at a time: a second must see the
	// first's cluster, not start its own.
	unlock := p.creating.lock(req.ClusterID)
	defer unlock()
	p.purge(p.clk.Now())
	if id, found, err := p.lookup(ctx, req.ClusterID); err != nil {
		return "", err
	} else if found {
		return id, nil
	}
	spec := p.o.Primary
	if req.Fallback && p.o.Fallback != nil {
		spec = p.o.Fallback
	}
	// Named for the provider's own pool, which is what a scan looks for.
	req.Pool = p.o.Pool
	in := runJobFlowInput(spec, clusterRequest{CreateRequest: req, Installation: p.o.Installation, IdleTimeout: p.o.IdleTimeout})
	// RunJobFlow has no idempotency token: the SDK may retry it only when
	// EMR refused it outright (throttling), never after an answer that may
	// follow a cluster started.
	at := p.clk.Now()
	out, err := p.o.EMR.RunJobFlow(ctx, in, onlyThrottleRetries)
	if err != nil {
		if ambiguous(err) {
			p.mu.Lock()
			p.doubt[req.ClusterID] = at
			p.mu.Unlock()
		}
		return "", classify("RunJobFlow", err)
	}
	id := aws.ToString(out.JobFlowId)
	p.mu.Lock()
	p.byBerth[req.ClusterID] = id
	delete(p.doubt, req.ClusterID)
	c := &cluster{steps: map[string]*step{}, byName: map[string]string{}, doubt: map[string]time.Time{}, logURI: spec.LogURI, state: berth.ClusterStarting}
	p.clusters[id] = c
	p.mu.Unlock()
	p.o.Limiter.Track(id, true)
	p.log.Info("emr cluster started", "cluster_id", req.ClusterID, "emr_id", id, "fallback", req.Fallback)
	return id, nil
}

// lookup finds the live cluster started for a Berth cluster id, scanning
// the account's clusters the first time and whenever a RunJobFlow for it
// went unanswered.
func (p *Provider) lookup(ctx context.Context, clusterID string) (string, bool, error) {
	p.mu.Lock()
	id, ok := p.byBerth[clusterID]
	at, doubted := p.doubt[clusterID]
	fresh := p.scanned && !doubted
	p.mu.Unlock()
	if ok {
		return id, true, nil
	}
	if fresh {
		return "", false, nil
	}
	if _, err := p.scanClusters(ctx); err != nil {
		return "", false, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if id, ok = p.byBerth[clusterID]; ok {
		delete(p.doubt, clusterID)
		return id, true, nil
	}
	if doubted {
		if err := p.settle(at); err != nil {
			return "", false, err
		}
		delete(p.doubt, clusterID)
	}
	return "", false, nil
}

// doubtWindow is how long after an unanswered call Berth waits before it
// takes "not found" for "never happened": EMR may still be carrying out a
// request whose answer the client gave up on.
const doubtWindow = time.Minute

// settle returns nil once an unanswered call made at at is old enough that
// a search not finding what it made means it was never made, and until
// then a transient error: the caller tries again later rather than make
// the thing a second time.
func (p *Provider) settle(at time.Time) error {
	if wait := doubtWindow - p.clk.Now().Sub(at); wait > 0 {
		return &provider.Error{Class: provider.ClassTransient, Code: "Unsettled",
			Message: fmt.Sprintf("an earlier call's answer was lost; waiting %s to be sure it took no effect before making it again", wait.Round(time.Second))}
	}
	return nil
}

// FindCluster finds the live cluster started for a Berth cluster id,
// looking afresh.
func (p *Provider) FindCluster(ctx context.Context, clusterID string) (string, bool, error) {
	if _, err := p.scanClusters(ctx); err != nil {
		return "", false, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	id, ok := p.byBerth[clusterID]
	return id, ok, nil
}

// ListClusters lists the live clusters named for this installation and
// pool, those being torn down left out.
func (p *Provider) ListClusters(ctx context.Context) ([]provider.Listed, error) {
	found, err := p.scanClusters(ctx)
	if err != nil {
		return nil, err
	}
	var out []provider.Listed
	for _, l := range found {
		if !l.ending {
			out = append(out, l.Listed)
		}
	}
	slices.SortFunc(out, func(a, b provider.Listed) int { return strings.Compare(a.ClusterID, b.ClusterID) })
	return out, nil
}

// listed is a cluster of a scan.
type listed struct {
	provider.Listed
	ending bool
}

// scanClusters lists the account's live clusters and records those named
// for this installation and pool: one ListClusters call per 50 clusters,
// not a call per cluster. The name says whose a cluster is; ListClusters
// returns names, not tags.
func (p *Provider) scanClusters(ctx context.Context) (map[string]listed, error) {
	p.scan.Lock()
	defer p.scan.Unlock()
	found := map[string]listed{}
	in := &emr.ListClustersInput{ClusterStates: activeClusterStates}
	for {
		out, err := p.o.EMR.ListClusters(ctx, in)
		if err != nil {
			return nil, classify("ListClusters", err)
		}
		for _, cs := range out.Clusters {
			inst, pool, cid, ok := parseClusterName(aws.ToString(cs.Name))
			if !ok || inst != p.o.Installation || pool != p.o.Pool || cs.Status == nil {
				continue
			}
			l := listed{Listed: provider.Listed{ID: aws.ToString(cs.Id), ClusterID: cid}, ending: cs.Status.State == types.ClusterStateTerminating}
			if tl := cs.Status.Timeline; tl != nil {
				l.Since = aws.ToTime(tl.CreationDateTime)
			}
			if prev, dup := found[cid]; dup && !prev.ending {
				// Two live clusters for one id: keep the first for the
				// id; the other is a stray the service will find.
				found[cid+" "+l.ID] = l
				continue
			}
			found[cid] = l
		}
		if out.Marker == nil {
			break
		}
		in.Marker = out.Marker
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for cid := range p.byBerth {
		if l, live := found[cid]; !live || l.ending {
			// Gone, or going: a new creation for it starts a new cluster.
			delete(p.byBerth, cid)
		}
	}
	for cid, l := range found {
		if l.ClusterID == cid && !l.ending {
			p.byBerth[cid] = l.ID
		}
	}
	p.scanned = true
	return found, nil
}

// DescribeCluster reports a cluster's state from DescribeCluster.
func (p *Provider) DescribeCluster(ctx context.Context, id string) (provider.Cluster, error) {
	out, err := p.o.EMR.DescribeCluster(ctx, &emr.DescribeClusterInput{ClusterId: aws.String(id)})
	if err != nil {
		if unknownCluster(err) {
			c := provider.Cluster{ID: id, State: berth.ClusterLost, Reason: "EMR does not know the cluster"}
			p.observe(id, c, "")
			return c, nil
		}
		return provider.Cluster{}, classify("DescribeCluster", err)
	}
	if out.Cluster == nil || out.Cluster.Status == nil {
		return provider.Cluster{}, &provider.Error{Class: provider.ClassTransient, Code: "EmptyAnswer", Message: "DescribeCluster returned no status"}
	}
	c := clusterState(id, out.Cluster.Status)
	p.observe(id, c, aws.ToString(out.Cluster.LogUri))
	return c, nil
}

// observe records a cluster's state: the fleet the limiter paces counts
// it while it lives, and SubmitStep knows whether it is ready.
func (p *Provider) observe(id string, c provider.Cluster, logURI string) {
	p.o.Limiter.Track(id, !c.State.Terminal())
	rec := p.cluster(id)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.state = c.State
	if c.State.Terminal() && rec.ended.IsZero() {
		rec.ended = p.clk.Now()
	}
	if logURI != "" {
		rec.logURI = logURI
	}
}

// TerminateCluster ends a cluster with TerminateJobFlows.
func (p *Provider) TerminateCluster(ctx context.Context, id string) error {
	_, err := p.o.EMR.TerminateJobFlows(ctx, &emr.TerminateJobFlowsInput{JobFlowIds: []string{id}})
	if err != nil && !unknownCluster(err) {
		return classify("TerminateJobFlows", err)
	}
	return nil
}

// SubmitStep adds one step with AddJobFlowSteps, unless a step of its name
// is on the cluster: added before a crash, or by a call whose answer was
// lost. AddJobFlowSteps has no idempotency token, so the name is the only
// way to tell.
func (p *Provider) SubmitStep(ctx context.Context, clusterID string, req provider.StepRequest) (string, error) {
	if err := checkStep(req.Step); err != nil {
		return "", err
	}
	c := p.cluster(clusterID)
	if err := p.ready(ctx, clusterID, c); err != nil {
		return "", err
	}
	id, found, err := p.findStep(ctx, clusterID, c, req)
	if err != nil || found {
		return id, err
	}
	c.mu.Lock()
	active := 0
	for _, s := range c.steps {
		if !s.final {
			active++
		}
	}
	c.mu.Unlock()
	if active >= maxActiveSteps {
		// Berth runs at most slots (≤ 256) steps at once; steps it is still
		// cancelling can fill the rest. Wait for them, as EMR would refuse.
		return "", &provider.Error{Class: provider.ClassTransient, Code: "StepLimit", Message: "the cluster has 256 pending and running steps"}
	}
	in := &emr.AddJobFlowStepsInput{JobFlowId: aws.String(clusterID), Steps: []types.StepConfig{stepConfig(req.Name, req.Step)}}
	if req.ExecutionRoleArn != "" {
		in.ExecutionRoleArn = aws.String(req.ExecutionRoleArn)
	}
	at := p.clk.Now()
	out, err := p.o.EMR.AddJobFlowSteps(ctx, in, onlyThrottleRetries)
	if err != nil {
		if ambiguous(err) {
			c.mu.Lock()
			c.doubt[req.Name] = at
			c.mu.Unlock()
		}
		return "", stepError("AddJobFlowSteps", err)
	}
	if len(out.StepIds) != 1 {
		return "", &provider.Error{Class: provider.ClassTransient, Code: "EmptyAnswer", Message: fmt.Sprintf("AddJobFlowSteps returned %d step ids for one step", len(out.StepIds))}
	}
	id = out.StepIds[0]
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.doubt, req.Name)
	c.add(&step{Step: provider.Step{ID: id, Name: req.Name, State: berth.StepPending}})
	return id, nil
}

// ready returns ErrNotReady unless the cluster is ready (EMR would take
// the step and keep it pending). It asks EMR only when the last poll did
// not find it ready.
func (p *Provider) ready(ctx context.Context, id string, c *cluster) error {
	c.mu.Lock()
	state := c.state
	c.mu.Unlock()
	if state != berth.ClusterReady {
		d, err := p.DescribeCluster(ctx, id)
		if err != nil {
			return err
		}
		state = d.State
	}
	if state != berth.ClusterReady {
		return fmt.Errorf("%w: EMR cluster %s is %s", provider.ErrNotReady, id, state)
	}
	return nil
}

// add records a step.
func (c *cluster) add(s *step) {
	c.steps[s.ID] = s
	if s.Name != "" {
		c.byName[s.Name] = s.ID
	}
}

// findStep looks for a step of req's name on the cluster: in what the
// provider knows, and when that is not enough (an adopted cluster, a call
// that went unanswered) in the cluster's steps, newest first, back to when
// the step's attempt began. A cluster's history is never read further.
func (p *Provider) findStep(ctx context.Context, clusterID string, c *cluster, req provider.StepRequest) (string, bool, error) {
	c.mu.Lock()
	if id, ok := c.byName[req.Name]; ok {
		c.mu.Unlock()
		return id, true, nil
	}
	// Zero: look through the whole history.
	var since time.Time
	if !req.Since.IsZero() {
		since = req.Since.Add(-clockSkew)
	}
	if at, ok := c.doubt[req.Name]; ok {
		if t := at.Add(-clockSkew); t.Before(since) {
			since = t
		}
	} else if !since.Before(c.known) {
		c.mu.Unlock()
		return "", false, nil
	}
	c.mu.Unlock()
	in := &emr.ListStepsInput{ClusterId: aws.String(clusterID)}
	oldest, now := farFuture, p.clk.Now()
	for {
		out, err := p.o.EMR.ListSteps(ctx, in)
		if err != nil {
			return "", false, stepError("ListSteps", err)
		}
		if out.Marker == nil {
			// The whole history was read.
			oldest = time.Time{}
		}
		done := out.Marker == nil
		c.mu.Lock()
		for _, s := range out.Steps {
			st := stepOf(s)
			c.merge(st, now)
			if t := createdAt(s); !t.IsZero() {
				if t.Before(oldest) {
					oldest = t
				}
				if t.Before(since) {
					done = true
				}
			}
		}
		c.mu.Unlock()
		if done {
			break
		}
		in.Marker = out.Marker
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if oldest.Before(c.known) {
		c.known = oldest
	}
	if id, ok := c.byName[req.Name]; ok {
		delete(c.doubt, req.Name)
		return id, true, nil
	}
	if at, doubted := c.doubt[req.Name]; doubted {
		if err := p.settle(at); err != nil {
			return "", false, err
		}
		delete(c.doubt, req.Name)
	}
	return "", false, nil
}

// merge records what EMR said of a step, keeping what the provider knows
// of its cancellation.
func (c *cluster) merge(st provider.Step, now time.Time) (s *step) {
	s = c.steps[st.ID]
	if s == nil {
		s = &step{}
	}
	s.Step, s.misses = st, 0
	s.final = st.State.Terminal()
	if s.final && s.endedSeen.IsZero() {
		s.endedSeen = now
	}
	c.add(s)
	return s
}

// TrackSteps makes the provider ask about steps it did not add itself:
// those of an adopted cluster that ran on while Berth was down. A step
// known only by name is looked for once, by the next ListSteps, back to
// its attempt's start.
func (p *Provider) TrackSteps(clusterID string, steps []provider.TrackedStep) {
	c := p.cluster(clusterID)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range steps {
		switch {
		case st.ID != "":
			if _, ok := c.steps[st.ID]; !ok {
				c.steps[st.ID] = &step{Step: provider.Step{ID: st.ID, State: berth.StepRunning}}
			}
		case st.Name != "":
			if _, ok := c.byName[st.Name]; !ok {
				c.unnamed = append(c.unnamed, provider.StepRequest{Name: st.Name, Since: st.Since})
			}
		}
	}
}

// ListSteps reports the cluster's steps that have not ended, and those
// that ended within the last hour, for the price of what is still
// running: one ListSteps of the pending and running steps (a page per 50),
// and, for those that ended since the last poll, one by id per ten. A
// cluster that has run 10,000 steps costs as little as a new one. Steps
// already known to have ended come from memory.
//
// It also escalates cancellations: a step that has not stopped within the
// cancel grace of its SEND_INTERRUPT is sent TERMINATE_PROCESS.
func (p *Provider) ListSteps(ctx context.Context, clusterID string) ([]provider.Step, error) {
	c := p.cluster(clusterID)
	now := p.clk.Now()
	c.mu.Lock()
	search := c.unnamed
	c.unnamed = nil
	c.mu.Unlock()
	for i, req := range search {
		// The searches share what they read: after the first, the others
		// mostly find the history known.
		if _, _, err := p.findStep(ctx, clusterID, c, req); err != nil {
			c.mu.Lock()
			c.unnamed = append(c.unnamed, search[i:]...)
			c.mu.Unlock()
			return nil, err
		}
	}
	in := &emr.ListStepsInput{ClusterId: aws.String(clusterID), StepStates: activeStepStates}
	active := map[string]bool{}
	for {
		out, err := p.o.EMR.ListSteps(ctx, in)
		if err != nil {
			if unknownCluster(err) {
				return nil, nil
			}
			return nil, classify("ListSteps", err)
		}
		c.mu.Lock()
		for _, s := range out.Steps {
			st := stepOf(s)
			active[st.ID] = true
			c.merge(st, now)
		}
		c.mu.Unlock()
		if out.Marker == nil {
			break
		}
		in.Marker = out.Marker
	}
	// The steps that were running and are not any more: ask how they ended.
	c.mu.Lock()
	var ended []string
	for id, s := range c.steps {
		if !s.final && !active[id] {
			ended = append(ended, id)
		}
	}
	c.mu.Unlock()
	slices.Sort(ended)
	for chunk := range slices.Chunk(ended, listBatch) {
		out, err := p.o.EMR.ListSteps(ctx, &emr.ListStepsInput{ClusterId: aws.String(clusterID), StepIds: chunk})
		if err != nil {
			return nil, classify("ListSteps", err)
		}
		c.mu.Lock()
		got := map[string]bool{}
		for _, s := range out.Steps {
			got[c.merge(stepOf(s), now).ID] = true
		}
		for _, id := range chunk {
			if s := c.steps[id]; s != nil && !got[id] {
				if s.misses++; s.misses >= maxMisses {
					p.log.Warn("emr: forgetting a step EMR does not list", "emr_id", clusterID, "step_id", id)
					delete(c.steps, id)
				}
			}
		}
		c.mu.Unlock()
	}
	p.escalate(ctx, clusterID, c)
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]provider.Step, 0, len(c.steps))
	for _, id := range slices.Sorted(maps.Keys(c.steps)) {
		// A step that ended is reported for keepEnded, long enough for
		// the service to take it in; after that only its name is kept
		// (byName, for SubmitStep), so that a poll's report does not grow
		// with the cluster's history.
		s := c.steps[id]
		if s.final && now.Sub(s.endedSeen) > keepEnded {
			delete(c.steps, id)
			continue
		}
		if s.Name != "" {
			out = append(out, s.Step)
		}
	}
	return out, nil
}

// escalate sends TERMINATE_PROCESS to the steps that outlived the grace of
// their SEND_INTERRUPT.
func (p *Provider) escalate(ctx context.Context, clusterID string, c *cluster) {
	now := p.clk.Now()
	c.mu.Lock()
	var due []string
	for id, s := range c.steps {
		if !s.final && !s.killed && !s.interrupted.IsZero() && now.Sub(s.interrupted) >= p.o.CancelGrace {
			due = append(due, id)
		}
	}
	c.mu.Unlock()
	if len(due) == 0 {
		return
	}
	slices.Sort(due)
	if err := p.cancel(ctx, clusterID, due, types.StepCancellationOptionTerminateProcess); err != nil {
		p.log.Warn("emr: could not terminate the steps that ignored their interrupt", "emr_id", clusterID, "steps", due, "err", err)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range due {
		// Another poll may have forgotten it meanwhile.
		if s := c.steps[id]; s != nil {
			s.killed = true
		}
	}
}

// CancelStep interrupts a step (SEND_INTERRUPT); one that has not stopped
// after the cancel grace is sent TERMINATE_PROCESS by a later poll.
func (p *Provider) CancelStep(ctx context.Context, clusterID, stepID string) error {
	c := p.cluster(clusterID)
	c.mu.Lock()
	s := c.steps[stepID]
	if s != nil && s.final {
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	if err := p.cancel(ctx, clusterID, []string{stepID}, types.StepCancellationOptionSendInterrupt); err != nil {
		if unknownCluster(err) {
			return nil
		}
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if s = c.steps[stepID]; s == nil {
		s = &step{Step: provider.Step{ID: stepID, State: berth.StepRunning}}
		c.steps[stepID] = s
	}
	if s.interrupted.IsZero() {
		s.interrupted = p.clk.Now()
	}
	return nil
}

// cancel calls CancelSteps. EMR answers for each step; a step that has
// already ended is not an error.
func (p *Provider) cancel(ctx context.Context, clusterID string, ids []string, how types.StepCancellationOption) error {
	_, err := p.o.EMR.CancelSteps(ctx, &emr.CancelStepsInput{ClusterId: aws.String(clusterID), StepIds: ids, StepCancellationOption: how})
	if err != nil {
		return classify("CancelSteps", err)
	}
	return nil
}

// stepOf reads a step of ListSteps.
func stepOf(s types.StepSummary) provider.Step {
	st := provider.Step{ID: aws.ToString(s.Id), Name: aws.ToString(s.Name), State: berth.StepPending}
	if s.Status == nil {
		return st
	}
	if tl := s.Status.Timeline; tl != nil {
		st.StartedAt, st.EndedAt = aws.ToTime(tl.StartDateTime), aws.ToTime(tl.EndDateTime)
	}
	switch s.Status.State {
	case types.StepStatePending:
	case types.StepStateRunning, types.StepStateCancelPending:
		st.State = berth.StepRunning
	case types.StepStateCompleted:
		st.State = berth.StepSucceeded
	case types.StepStateFailed:
		st.State = berth.StepFailed
		st.Message = failureMessage(s.Status)
		st.Lost = lostNode(st.Message)
	case types.StepStateCancelled, types.StepStateInterrupted:
		// Cancelled by Berth, or by the cluster's end: the service tells
		// the two apart by whether it asked.
		st.State = berth.StepCancelled
		if r := s.Status.StateChangeReason; r != nil {
			st.Message = aws.ToString(r.Message)
		}
		if s.Status.State == types.StepStateInterrupted && st.Message == "" {
			st.Message = "interrupted"
		}
	}
	return st
}

// failureMessage is EMR's account of a failed step: reason, message and
// where the log that says more is.
func failureMessage(s *types.StepStatus) string {
	fd := s.FailureDetails
	if fd == nil {
		if r := s.StateChangeReason; r != nil && aws.ToString(r.Message) != "" {
			return aws.ToString(r.Message)
		}
		return "step failed"
	}
	msg := aws.ToString(fd.Reason)
	if m := aws.ToString(fd.Message); m != "" {
		if msg != "" {
			msg += ": "
		}
		msg += m
	}
	if msg == "" {
		msg = "step failed"
	}
	if lf := aws.ToString(fd.LogFile); lf != "" {
		msg += " (log: " + lf + ")"
	}
	return msg
}

// lostNode reports whether a step failed because YARN lost the node it
// ran on (a spot node reclaimed, a core node gone), by EMR's and YARN's
// words for it: "Container released on a *lost* node", exit status -100.
func lostNode(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "released on a *lost* node") || strings.Contains(m, "lost node") ||
		strings.Contains(m, "node of the cluster was lost") || strings.Contains(m, "exit status: -100")
}

// createdAt is when EMR says a step was added.
func createdAt(s types.StepSummary) time.Time {
	if s.Status == nil || s.Status.Timeline == nil {
		return time.Time{}
	}
	return aws.ToTime(s.Status.Timeline.CreationDateTime)
}
