package simcheck

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/executor"
	"github.com/berthhq/berth/internal/provider/sim"
	"github.com/berthhq/berth/internal/service"
	"github.com/berthhq/berth/internal/store"
	"github.com/berthhq/berth/internal/store/memory"
	"github.com/berthhq/berth/internal/store/sqlite"
)

// DefaultHours is how much simulated time one seed runs.
const DefaultHours = 8

// activeShare is the part of a run during which work arrives and faults
// strike; the rest is quiet, so that every job can end. The quiet time is
// at least minQuiet: the bound within which every job must end once the
// faults stop, longer than a pool's longest hold on starts (10 minutes), a
// boot and the longest job with its retries.
const (
	activeShare = 0.6
	minQuiet    = 90 * time.Minute
)

// maxFailures stops a seed after this many failed checks.
const maxFailures = 5

// epoch is where every simulation's clock starts.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Options configure one seed's run.
type Options struct {
	Seed uint64
	// Hours of simulated time; 0 means DefaultHours.
	Hours float64
	// Dir holds the seed's SQLite store; "" means a temporary directory,
	// removed at the end.
	Dir string
	// Log, when set, receives the event log as the run makes it.
	Log io.Writer
	// SQLite runs the seed over the SQLite store in Dir instead of the
	// in-memory one: slower, and the real driver under the same faults.
	SQLite bool
	// corrupt makes the store write one job with two running attempts, as
	// a bug would: the harness's own test that it notices.
	corrupt bool
}

// Result is what one seed's run found.
type Result struct {
	Seed uint64
	// Simulated is the virtual time the run covered.
	Simulated time.Duration
	// Jobs is how many submissions were acknowledged; Events how many
	// events the executor ran.
	Jobs   int
	Events uint64
	// Faults counts what was injected, by kind.
	Faults map[string]int
	// Failures are the invariants that did not hold, each with when.
	Failures []string
	// Log is the event log: what the harness did and, at the end, every
	// event the service recorded. The same seed gives the same log.
	Log []string
}

// run is one seed in progress.
type run struct {
	o      Options
	ctx    context.Context
	rng    *rand.Rand
	exec   *executor.Sim
	dir    string
	path   string
	st     *flakyStore
	w      workload
	pools  []service.Pool
	provs  map[string]*sim.Provider
	limits map[string]berth.Pool
	svc    *service.Service
	down   bool
	ids    int
	active time.Duration
	end    time.Time
	faulty bool
	res    Result
	check  checker
	// mem is the in-memory database the run's stores open, unless SQLite.
	mem *memory.DB
	// seen keeps each failure from being reported twice.
	seen map[string]bool
	// changed marks the pools whose models a fault changed.
	changed map[string]bool
}

// Run runs one seed: a generated workload with faults over simulated
// time, checking the invariants after every event.
func Run(ctx context.Context, o Options) (Result, error) {
	if o.Hours <= 0 {
		o.Hours = DefaultHours
	}
	total := time.Duration(o.Hours * float64(time.Hour))
	r := &run{
		o: o, ctx: ctx,
		rng:     rand.New(rand.NewPCG(o.Seed, 0x73696d)),
		exec:    executor.NewSim(epoch, o.Seed),
		provs:   map[string]*sim.Provider{},
		limits:  map[string]berth.Pool{},
		changed: map[string]bool{},
		active:  time.Duration(float64(total) * activeShare),
		end:     epoch.Add(max(total, time.Duration(float64(total)*activeShare)+minQuiet)),
		res:     Result{Seed: o.Seed, Faults: map[string]int{}},
	}
	r.check.r = r
	r.check.init()
	r.exec.Latency = r.latency
	r.faulty = true
	if err := r.setup(); err != nil {
		r.cleanup()
		return r.res, err
	}
	defer r.cleanup()
	r.plan()
	for len(r.res.Failures) < maxFailures {
		next, ok := r.exec.Next()
		if !ok || next.After(r.end) {
			break
		}
		r.exec.Step()
		r.check.afterStep()
	}
	r.exec.RunUntil(r.end)
	r.res.Simulated = r.exec.Now().Sub(epoch)
	r.res.Events = r.exec.Steps()
	if len(r.res.Failures) < maxFailures {
		r.check.atEnd()
	}
	r.appendServiceEvents()
	return r.res, nil
}

func (r *run) setup() error {
	r.dir = r.o.Dir
	if r.dir == "" && r.o.SQLite {
		d, err := os.MkdirTemp("", "berth-simcheck-")
		if err != nil {
			return err
		}
		r.dir = d
	}
	r.path = filepath.Join(r.dir, "berth.db")
	r.mem = memory.New()
	r.w = genWorkload(r.rng, r.active)
	for i, pp := range r.w.pools {
		p, err := sim.New(sim.Options{
			Primary: pp.primary, Fallback: pp.fallback, PricePerHour: pp.pool.PricePerHour,
			PollInterval: 30 * time.Second, Seed: r.o.Seed*1000 + uint64(i), Clock: r.exec,
			IDPrefix: "sim" + pp.pool.Name,
		})
		if err != nil {
			return fmt.Errorf("pool %s: %w", pp.pool.Name, err)
		}
		r.provs[pp.pool.Name] = p
		r.limits[pp.pool.Name] = pp.pool
		r.pools = append(r.pools, service.Pool{Pool: pp.pool, Provider: p})
		r.logf("pool %s: slots %d, clusters %d..%d, idle %s, boot timeout %s, max lifetime %s, fallback %v, loss report lag %s",
			pp.pool.Name, pp.pool.Slots, pp.pool.MinClusters, pp.pool.MaxClusters, pp.pool.IdleTimeout,
			pp.pool.BootTimeout, pp.pool.MaxLifetime, pp.pool.Fallback != nil, p.AttributionGrace())
	}
	r.st = &flakyStore{rng: r.rng, written: r.check.written, created: r.check.created, corrupt: r.o.corrupt}
	return r.boot()
}

// boot opens the store and starts a service on it, as a (re)started
// server does.
func (r *run) boot() error {
	var st store.Store = r.mem.Open()
	if r.o.SQLite {
		lite, err := sqlite.Open(r.ctx, r.path, nil)
		if err != nil {
			return fmt.Errorf("open store: %w", err)
		}
		st = lite
	}
	r.st.Store = st
	svc, err := service.New(service.Options{
		Store: r.st, Pools: r.pools, Executor: r.exec, NewID: r.newID, OnPass: r.check.onPass,
		Tick: time.Minute, RetryBackoff: 30 * time.Second,
		Log: slog.New(slog.DiscardHandler),
		// Most seeds keep few jobs of a queue whole, so that the
		// dormant rest is read and placed under the same faults; the
		// seed picks, not its random stream, which stays as it was.
		KeepWhole: []int{0, 1, 3, 8}[r.o.Seed%4],
	})
	if err != nil {
		st.Close()
		return err
	}
	if err := svc.Start(r.ctx); err != nil {
		st.Close()
		return fmt.Errorf("start service: %w", err)
	}
	r.svc, r.down = svc, false
	return nil
}

func (r *run) cleanup() {
	if r.svc != nil && !r.down {
		r.svc.Abandon()
	}
	if r.st != nil && r.st.Store != nil {
		r.st.Close()
	}
	if r.o.Dir == "" && r.dir != "" && r.o.SQLite {
		os.RemoveAll(r.dir)
	}
}

// newID makes ids from a counter: the system's randomness would make two
// runs of one seed differ.
func (r *run) newID(prefix string, _ time.Time) string {
	r.ids++
	return fmt.Sprintf("%s-%06d", prefix, r.ids)
}

// latency is how long a provider call takes: quick, and now and then very
// slow while faults strike.
func (r *run) latency(rng *rand.Rand) time.Duration {
	if r.faulty && rng.IntN(50) == 0 {
		return time.Duration(rng.IntN(90)) * time.Second
	}
	return time.Duration(rng.IntN(400)) * time.Millisecond
}

func (r *run) logf(format string, args ...any) {
	line := fmt.Sprintf("%9s  %s", r.exec.Now().Sub(epoch).Round(time.Millisecond), fmt.Sprintf(format, args...))
	r.res.Log = append(r.res.Log, line)
	if r.o.Log != nil {
		fmt.Fprintln(r.o.Log, line)
	}
}

func (r *run) failf(format string, args ...any) {
	what := fmt.Sprintf(format, args...)
	if r.seen[what] {
		return
	}
	if r.seen == nil {
		r.seen = map[string]bool{}
	}
	r.seen[what] = true
	msg := fmt.Sprintf("at %s: %s", r.exec.Now().Sub(epoch).Round(time.Millisecond), what)
	r.res.Failures = append(r.res.Failures, msg)
	r.logf("FAILED %s", fmt.Sprintf(format, args...))
}

// appendServiceEvents adds what the service recorded to the log.
func (r *run) appendServiceEvents() {
	if r.down {
		if err := r.boot(); err != nil {
			r.logf("cannot reopen the store to read its events: %v", err)
			return
		}
	}
	evs, err := r.st.ListEvents(r.ctx, store.EventFilter{})
	if err != nil {
		r.logf("read events: %v", err)
		return
	}
	r.res.Log = append(r.res.Log, "--- events recorded by the service")
	for _, e := range evs {
		line := fmt.Sprintf("%6d %9s %-12s %-10s %-16s %s", e.Seq, e.At.Sub(epoch), e.JobID, e.ClusterID, e.Kind, e.Message)
		r.res.Log = append(r.res.Log, line)
		if r.o.Log != nil {
			fmt.Fprintln(r.o.Log, line)
		}
	}
}

// flakyStore is the real store with commit and submission failures
// injected while failP is above zero: before the write (nothing stored) or,
// for commits, after it (stored, but the caller is told it failed, as when
// an acknowledgement is lost). It also keeps a copy of what the store
// holds, taken from every write that reached it, for the checks: what is
// durable, not what the service believes.
type flakyStore struct {
	store.Store
	rng   *rand.Rand
	failP float64
	// written is called with every batch the store took.
	written func(store.Batch)
	// created is called with every job the store took.
	created func(berth.Job)
	// corrupt, once, writes a running job with a second running attempt.
	corrupt bool
}

var errInjected = fmt.Errorf("%w: injected store failure", berth.ErrUnavailable)

func (f *flakyStore) Commit(ctx context.Context, b store.Batch) error {
	if f.corrupt {
		for i, j := range b.Jobs {
			if a := j.CurrentAttempt(); a != nil {
				twice := *a
				twice.N++
				j.Attempts = append(slices.Clone(j.Attempts), twice)
				b.Jobs = append(slices.Clone(b.Jobs[:i]), append([]berth.Job{j}, b.Jobs[i+1:]...)...)
				f.corrupt = false
				break
			}
		}
	}
	fail := f.failP > 0 && f.rng.Float64() < f.failP
	if fail && f.rng.IntN(2) == 0 {
		return errInjected
	}
	if err := f.Store.Commit(ctx, b); err != nil {
		return err
	}
	if f.written != nil {
		f.written(b)
	}
	if fail {
		return fmt.Errorf("after the write: %w", errInjected)
	}
	return nil
}

func (f *flakyStore) CreateJob(ctx context.Context, j berth.Job) (berth.Job, bool, error) {
	if f.failP > 0 && f.rng.Float64() < f.failP {
		return berth.Job{}, false, errInjected
	}
	stored, created, err := f.Store.CreateJob(ctx, j)
	if err == nil && created && f.created != nil {
		f.created(stored)
	}
	return stored, created, err
}

func (f *flakyStore) CreateJobs(ctx context.Context, jobs []berth.Job, held func(int, *berth.Job) error) ([]berth.Submitted, error) {
	if f.failP > 0 && f.rng.Float64() < f.failP {
		return nil, errInjected
	}
	out, err := f.Store.CreateJobs(ctx, jobs, held)
	for _, c := range out {
		if c.Created && f.created != nil {
			f.created(c.Job)
		}
	}
	return out, err
}
