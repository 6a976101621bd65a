package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/clock"
	"github.com/berthhq/berth/internal/provider"
)

// DefaultPollInterval is what PollInterval reports unless Options say
// otherwise. Polling the simulator costs nothing; a simulation that counts
// API calls should set the interval it means to model.
const DefaultPollInterval = time.Second

// DefaultIDPrefix starts every id the provider issues unless Options say
// otherwise.
const DefaultIDPrefix = "sim"

// Codes of the failures the provider reports, named as EMR names them.
const (
	CodeCapacity   = "InsufficientCapacity"
	CodeValidation = "ValidationException"
	CodeBootstrap  = "BootstrapFailure"
	CodeThrottling = "ThrottlingException"
	CodeInternal   = "InternalServerError"
	CodeLostReply  = "RequestTimeout"
)

// Reasons a cluster reports for its end.
const (
	ReasonReclaimed  = "spot capacity reclaimed"
	ReasonKilled     = "spot capacity reclaimed (injected)"
	ReasonBootstrap  = "bootstrap action 1 failed"
	ReasonTerminated = "terminated on request"
	ReasonUnknown    = "unknown to the sim provider"
)

// Options configure a Provider.
type Options struct {
	// Primary is how clusters of the pool's primary spec behave.
	Primary Model
	// Fallback is how clusters of its fallback spec (CreateRequest.Fallback)
	// behave; nil means as Primary.
	Fallback *Model
	// PricePerHour of one cluster, for Cost.
	PricePerHour float64
	// PollInterval is what PollInterval reports; 0 means
	// DefaultPollInterval.
	PollInterval time.Duration
	// Seed seeds the one source every random draw comes from.
	Seed uint64
	// Faults are the API faults in force from the start; see SetFaults.
	Faults Faults
	// Script, when set, decides every step's duration and whether it
	// succeeds, instead of its args. It is called with the provider's lock
	// held, so it must not call the provider.
	Script func(name string, step berth.Step) (time.Duration, bool)
	// IDPrefix starts every cluster and step id; "" means DefaultIDPrefix.
	// A server that restarts over a store holding ids of an earlier run
	// gives each run its own, so that a new cluster never takes an old
	// one's id.
	IDPrefix string
	// LossAfter, when set, decides how long the n-th cluster created
	// (from 0) lives before its spot capacity is reclaimed, instead of the
	// model's draw: 0 never loses it. A simulation that compares policies
	// gives every policy's n-th cluster of a pool the same fate.
	LossAfter func(n int) time.Duration
	// Clock is the time the model runs on; nil means the wall clock.
	Clock clock.Clock
	// Log receives what the provider does; nil discards it.
	Log *slog.Logger
}

// Provider simulates clusters and steps as a function of its clock. It
// implements provider.Provider and every optional capability, and is safe
// for concurrent use.
type Provider struct {
	mu           sync.Mutex
	clock        clock.Clock
	rng          *rand.Rand
	primary      Model
	fallback     Model
	price        float64
	pollInterval time.Duration
	script       func(string, berth.Step) (time.Duration, bool)
	lossAfter    func(int) time.Duration
	prefix       string
	log          *slog.Logger
	faults       Faults

	clusters []*cluster // in creation order
	byID     map[string]*cluster
	// byBerth holds the latest cluster created for each Berth cluster id.
	byBerth map[string]*cluster
	// started counts, per step name, the SubmitSteps that started a step.
	started map[string]int
	// calls counts the API calls made, per provider cluster id (creation
	// and lookup by Berth's id, prefixed "create:" and "find:").
	calls        map[string]int
	stepsStarted int
	refused      int
	nextCluster  int
	nextStep     int
}

var (
	_ provider.Provider    = (*Provider)(nil)
	_ provider.Killer      = (*Provider)(nil)
	_ provider.Finder      = (*Provider)(nil)
	_ provider.StepChecker = (*Provider)(nil)
	_ provider.LogReader   = (*Provider)(nil)
	_ provider.Poller      = (*Provider)(nil)
	_ provider.Attributor  = (*Provider)(nil)
	_ provider.Forgetter   = (*Provider)(nil)
)

// New returns a Provider with no clusters.
func New(opts Options) (*Provider, error) {
	fallback := opts.Primary
	if opts.Fallback != nil {
		fallback = *opts.Fallback
	}
	var errs []error
	if err := opts.Primary.validate(); err != nil {
		errs = append(errs, fmt.Errorf("primary model: %w", err))
	}
	if opts.Fallback != nil {
		if err := opts.Fallback.validate(); err != nil {
			errs = append(errs, fmt.Errorf("fallback model: %w", err))
		}
	}
	if err := opts.Faults.validate(); err != nil {
		errs = append(errs, err)
	}
	if !(opts.PricePerHour >= 0) {
		errs = append(errs, fmt.Errorf("price per hour %v: must be ≥ 0", opts.PricePerHour))
	}
	if opts.PollInterval < 0 {
		errs = append(errs, fmt.Errorf("poll interval %s: must not be negative", opts.PollInterval))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("sim provider: %w: %w", err, berth.ErrInvalid)
	}
	p := &Provider{
		clock:        opts.Clock,
		rng:          rand.New(rand.NewPCG(opts.Seed, seedStream)),
		primary:      opts.Primary,
		fallback:     fallback,
		price:        opts.PricePerHour,
		pollInterval: opts.PollInterval,
		script:       opts.Script,
		lossAfter:    opts.LossAfter,
		prefix:       opts.IDPrefix,
		log:          opts.Log,
		faults:       opts.Faults,
		byID:         map[string]*cluster{},
		byBerth:      map[string]*cluster{},
		started:      map[string]int{},
		calls:        map[string]int{},
	}
	if p.clock == nil {
		p.clock = clock.Real{}
	}
	if p.pollInterval == 0 {
		p.pollInterval = DefaultPollInterval
	}
	if p.prefix == "" {
		p.prefix = DefaultIDPrefix
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	return p, nil
}

// seedStream is PCG's second word: fixed, so that Seed alone decides.
const seedStream = 0x6265727468 // "berth"

// SetFaults changes the API faults from the next call on, so that a
// harness can turn them on and off while a simulation runs.
func (p *Provider) SetFaults(f Faults) error {
	if err := f.validate(); err != nil {
		return fmt.Errorf("%w: %w", err, berth.ErrInvalid)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = f
	return nil
}

// SetModel changes how clusters created from now on behave (those that
// exist keep theirs), so that a harness can make a spec break, run short of
// capacity, and be fixed again while a simulation runs. A nil fallback
// means as primary.
func (p *Provider) SetModel(primary Model, fallback *Model) error {
	fb := primary
	if fallback != nil {
		fb = *fallback
	}
	if err := errors.Join(primary.validate(), fb.validate()); err != nil {
		return fmt.Errorf("sim provider: %w: %w", err, berth.ErrInvalid)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.primary, p.fallback = primary, fb
	return nil
}

// Models returns how new clusters of the primary and fallback specs
// behave.
func (p *Provider) Models() (primary, fallback Model) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.primary, p.fallback
}

// AttributionGrace is the longest LossReportLag of the provider's models
// (provider.Attributor).
func (p *Provider) AttributionGrace() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return max(p.primary.LossReportLag, p.fallback.LossReportLag)
}

// PollInterval says how often the service should poll a sim cluster.
func (p *Provider) PollInterval() time.Duration { return p.pollInterval }

// cluster is everything the provider knows of one cluster. Its state is
// not stored: it follows from these times and the clock (see state).
type cluster struct {
	id, berthID, pool string
	slots             int
	fallback          bool
	model             Model
	created, readyAt  time.Time
	// lossAt is when the cluster is lost, with why; zero when no loss is
	// due. A loss drawn at creation may lie in the future.
	lossAt     time.Time
	lossClass  provider.Class
	lossReason string
	// termAt is when TerminateCluster began terminating it, termEnd when
	// it is terminated; zero when it was not.
	termAt, termEnd time.Time
	// termAsked is set by every TerminateCluster of it, even one that
	// found it gone already.
	termAsked bool

	steps  []*step // in submission order; ListSteps drops those forgotten or ended over listWindow ago
	byName map[string]*step
	byStep map[string]*step
	// active are the steps that may still be running: Snapshot prunes
	// them as they end, so that counting a cluster's running steps costs
	// in proportion to what runs, not to its history.
	active []*step
}

// state is the cluster's state at now. A loss comes first (it may cut a
// termination short: KillCluster of a terminating cluster), then a
// termination, then the boot.
func (c *cluster) state(now time.Time) berth.ClusterState {
	if !c.lossAt.IsZero() && !now.Before(c.lossAt) {
		return berth.ClusterLost
	}
	return c.alive(now)
}

// reported is the state DescribeCluster gives: a loss shows only after the
// model's LossReportLag.
func (c *cluster) reported(now time.Time) berth.ClusterState {
	if st := c.state(now); st != berth.ClusterLost || !now.Before(c.lossAt.Add(c.model.LossReportLag)) {
		return st
	}
	return c.alive(now)
}

// alive is the cluster's state leaving any loss aside.
func (c *cluster) alive(now time.Time) berth.ClusterState {
	switch {
	case !c.termAt.IsZero() && !now.Before(c.termEnd):
		return berth.ClusterTerminated
	case !c.termAt.IsZero() && !now.Before(c.termAt):
		return berth.ClusterTerminating
	case now.Before(c.readyAt):
		return berth.ClusterStarting
	}
	return berth.ClusterReady
}

func (c *cluster) ended(now time.Time) bool { return c.state(now).Terminal() }

// endAt is when the cluster ends, which may be in the future, and false
// while no end is due.
func (c *cluster) endAt() (time.Time, bool) {
	switch {
	case !c.lossAt.IsZero():
		return c.lossAt, true
	case !c.termAt.IsZero():
		return c.termEnd, true
	}
	return time.Time{}, false
}

// stopAt is when the cluster's steps stop, and the message a step stopped
// then reports: at the loss, or when termination began. Zero when neither
// is due.
func (c *cluster) stopAt() (time.Time, string) {
	switch {
	case !c.lossAt.IsZero() && (c.termAt.IsZero() || c.lossAt.Before(c.termAt)):
		return c.lossAt, "cluster lost: " + c.lossReason
	case !c.termAt.IsZero():
		return c.termAt, "cluster terminated"
	}
	return time.Time{}, ""
}

// cost is what the cluster has cost by now, as billed if it ended now:
// per second, at least a minute, from creation to its end.
func (c *cluster) cost(now time.Time, pricePerHour float64) float64 {
	end := now
	if at, ok := c.endAt(); ok && at.Before(now) {
		end = at
	}
	return Bill(end.Sub(c.created), pricePerHour)
}

// Bill is what a cluster that lived d costs, billed as EMR on EC2 bills:
// per second, rounded up, at least a minute. Simulated baselines bill
// their clusters with it too.
func Bill(d time.Duration, pricePerHour float64) float64 {
	billed := max(d, 0)
	if r := billed % time.Second; r != 0 {
		billed += time.Second - r
	}
	billed = max(billed, billingMinimum)
	return pricePerHour * billed.Hours()
}

// billingMinimum is the least a cluster is billed, as EMR on EC2 does.
const billingMinimum = time.Minute

// fault draws the call's API fault. An error means the call fails and
// does nothing; lostReply means it takes effect and then fails.
func (p *Provider) fault(op string) (lostReply bool, err error) {
	f := p.faults
	if !f.any() {
		return false, nil
	}
	u := p.rng.Float64()
	switch {
	case u < f.Transient:
		return false, fmt.Errorf("sim: %s: %w", op, &provider.Error{
			Class: provider.ClassTransient, Code: CodeInternal, Message: "internal error (injected)"})
	case u < f.Transient+f.Throttle:
		return false, fmt.Errorf("sim: %s: %w", op, &provider.Error{
			Class: provider.ClassTransient, Code: CodeThrottling, Message: "rate exceeded (injected)", Err: berth.ErrThrottled})
	case u < f.Transient+f.Throttle+f.LostReply:
		return true, nil
	}
	return false, nil
}

// reply is what a call returns: v and err, unless its reply is lost.
func reply[T any](lostReply bool, op string, v T, err error) (T, error) {
	if err == nil && lostReply {
		var zero T
		return zero, fmt.Errorf("sim: %s: %w", op, &provider.Error{
			Class: provider.ClassTransient, Code: CodeLostReply, Message: "the reply was lost (injected); the call took effect"})
	}
	return v, err
}

func errUnknownCluster(id string) error {
	return fmt.Errorf("sim cluster %s: %w", id, provider.ErrUnknownCluster)
}

func (p *Provider) model(fallback bool) Model {
	if fallback {
		return p.fallback
	}
	return p.primary
}

// CreateCluster starts a cluster for req, or returns the one started for
// req.ClusterID while it is not gone; once it is gone, a new one is
// started, as EMR's lookup by tag finds only live clusters. A broken spec
// or a capacity shortage refuses it.
func (p *Provider) CreateCluster(ctx context.Context, req provider.CreateRequest) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	const op = "create cluster"
	p.calls["create:"+req.ClusterID]++
	lost, err := p.fault(op)
	if err != nil {
		return "", err
	}
	id, err := p.create(req)
	return reply(lost, op, id, err)
}

func (p *Provider) create(req provider.CreateRequest) (string, error) {
	if req.ClusterID == "" {
		return "", fmt.Errorf("sim: create cluster: a cluster id is required: %w", berth.ErrInvalid)
	}
	if req.Slots < 1 {
		return "", fmt.Errorf("sim: create cluster %s: slots must be at least 1, got %d: %w", req.ClusterID, req.Slots, berth.ErrInvalid)
	}
	now := p.clock.Now()
	if c := p.byBerth[req.ClusterID]; c != nil && !c.ended(now) {
		return c.id, nil
	}
	m := p.model(req.Fallback)
	spec := "primary"
	if req.Fallback {
		spec = "fallback"
	}
	if m.Broken == BrokenValidation {
		p.refused++
		p.log.Info("sim cluster refused", "cluster_id", req.ClusterID, "code", CodeValidation)
		return "", fmt.Errorf("sim: create cluster %s: %w", req.ClusterID, &provider.Error{
			Class: provider.ClassPermanent, Code: CodeValidation, Message: "the " + spec + " spec is invalid (simulated)"})
	}
	if m.CapacityShortage > 0 && p.rng.Float64() < m.CapacityShortage {
		p.refused++
		p.log.Info("sim cluster refused", "cluster_id", req.ClusterID, "code", CodeCapacity)
		return "", fmt.Errorf("sim: create cluster %s: %w", req.ClusterID, &provider.Error{
			Class: provider.ClassCapacity, Code: CodeCapacity, Message: "insufficient capacity for the " + spec + " spec (simulated)"})
	}
	p.nextCluster++
	c := &cluster{
		id:       fmt.Sprintf("%s-c-%d", p.prefix, p.nextCluster),
		berthID:  req.ClusterID,
		pool:     req.Pool,
		slots:    req.Slots,
		fallback: req.Fallback,
		model:    m,
		created:  now,
		readyAt:  now.Add(m.BootTime.draw(p.rng)),
		byName:   map[string]*step{},
		byStep:   map[string]*step{},
	}
	// Drawn even when LossAfter decides, so that the draws after it are
	// the same either way.
	after := m.lossAfter(p.rng)
	if p.lossAfter != nil {
		if after = p.lossAfter(p.nextCluster - 1); after <= 0 {
			after = never
		}
	}
	if after != never {
		c.lossAt, c.lossClass, c.lossReason = now.Add(after), provider.ClassCapacity, ReasonReclaimed
	}
	if m.Broken == BrokenBootstrap && (c.lossAt.IsZero() || c.readyAt.Before(c.lossAt)) {
		c.lossAt, c.lossClass, c.lossReason = c.readyAt, provider.ClassPermanent, ReasonBootstrap
	}
	p.clusters = append(p.clusters, c)
	p.byID[c.id] = c
	p.byBerth[c.berthID] = c
	p.log.Info("sim cluster created", "cluster_id", c.berthID, "provider_id", c.id,
		"fallback", c.fallback, "ready_in", c.readyAt.Sub(now).String())
	return c.id, nil
}

// DescribeCluster reports a cluster's state; an id the provider never
// issued is lost.
func (p *Provider) DescribeCluster(ctx context.Context, id string) (provider.Cluster, error) {
	if err := ctx.Err(); err != nil {
		return provider.Cluster{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	const op = "describe cluster"
	p.calls[id]++
	lost, err := p.fault(op)
	if err != nil {
		return provider.Cluster{}, err
	}
	return reply(lost, op, p.describe(id), nil)
}

func (p *Provider) describe(id string) provider.Cluster {
	c := p.byID[id]
	if c == nil {
		return provider.Cluster{ID: id, State: berth.ClusterLost, Reason: ReasonUnknown}
	}
	out := provider.Cluster{ID: id, State: c.reported(p.clock.Now())}
	switch out.State {
	case berth.ClusterLost:
		out.Reason, out.Class = c.lossReason, c.lossClass
	case berth.ClusterTerminating, berth.ClusterTerminated:
		out.Reason = ReasonTerminated
	}
	return out
}

// TerminateCluster begins terminating a cluster: its steps stop at once,
// and it is terminated after a TerminateTime drawn now. A loss that was
// due later no longer comes. A cluster that is gone or already
// terminating, or that the provider never issued, is left as it is.
func (p *Provider) TerminateCluster(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	const op = "terminate cluster"
	p.calls[id]++
	lost, err := p.fault(op)
	if err != nil {
		return err
	}
	p.terminate(id)
	_, err = reply(lost, op, struct{}{}, nil)
	return err
}

func (p *Provider) terminate(id string) {
	c := p.byID[id]
	if c == nil {
		return
	}
	c.termAsked = true
	now := p.clock.Now()
	if c.ended(now) || !c.termAt.IsZero() {
		return
	}
	// Not ended, so any loss is still to come: the termination wins.
	c.lossAt, c.lossClass, c.lossReason = time.Time{}, "", ""
	c.termAt = now
	c.termEnd = now.Add(c.model.TerminateTime.draw(p.rng))
	p.log.Info("sim cluster terminating", "cluster_id", c.berthID, "provider_id", c.id, "terminated_in", c.termEnd.Sub(now).String())
}

// KillCluster makes the cluster lost now with ClassCapacity, as a spot
// reclaim would; its running steps fail. A cluster that is gone is left as
// it is. It is the harness's hand, not an API call, so no fault applies.
func (p *Provider) KillCluster(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.byID[id]
	if c == nil {
		return fmt.Errorf("sim: kill cluster: %w", errUnknownCluster(id))
	}
	now := p.clock.Now()
	if c.ended(now) {
		return nil
	}
	c.lossAt, c.lossClass, c.lossReason = now, provider.ClassCapacity, ReasonKilled
	p.log.Info("sim cluster killed", "cluster_id", c.berthID, "provider_id", c.id)
	return nil
}

// FindCluster returns the live cluster started for Berth's clusterID.
func (p *Provider) FindCluster(ctx context.Context, clusterID string) (string, bool, error) {
	if err := ctx.Err(); err != nil {
		return "", false, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	const op = "find cluster"
	p.calls["find:"+clusterID]++
	lost, err := p.fault(op)
	if err != nil {
		return "", false, err
	}
	id := ""
	if c := p.byBerth[clusterID]; c != nil && !c.ended(p.clock.Now()) {
		id = c.id
	}
	id, err = reply(lost, op, id, nil)
	return id, id != "", err
}
