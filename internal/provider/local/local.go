package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/clock"
	"github.com/berthhq/berth/internal/provider"
)

// DefaultPollInterval is how often the service polls a local cluster unless
// Options say otherwise: reading a few files is cheap.
const DefaultPollInterval = 200 * time.Millisecond

// cancelGrace is how long a cancelled step has between SIGTERM and SIGKILL.
const cancelGrace = 3 * time.Second

// Cluster states as cluster.json records them. Starting and ready are not
// recorded: they follow from created_at + boot_time.
const (
	recordRunning    = "running"
	recordTerminated = "terminated"
	recordLost       = "lost"
)

// ReasonKilled is the reason a cluster lost to KillCluster reports.
const ReasonKilled = "spot capacity reclaimed (injected)"

// ReasonUnknown is the reason DescribeCluster gives for an id it has no
// directory for.
const ReasonUnknown = "unknown to the local provider"

// reasonTerminated is the reason a cluster ended by TerminateCluster reports.
const reasonTerminated = "terminated on request"

// Options configure a Provider.
type Options struct {
	// Dir holds every cluster's state. It is created if missing. Several
	// Providers (one per pool) may share it.
	Dir string
	// BootTime is how long a new cluster stays starting: a stand-in for the
	// provisioning delay of a real provider.
	BootTime time.Duration
	// FallbackBootTime is BootTime for clusters built from the fallback
	// spec; 0 means BootTime.
	FallbackBootTime time.Duration
	// PollInterval is what PollInterval reports; 0 means
	// DefaultPollInterval.
	PollInterval time.Duration
	// Clock decides when a cluster is ready and stamps records; nil means
	// the wall clock.
	Clock clock.Clock
	// Log receives what the provider does; nil discards it.
	Log *slog.Logger
}

// Provider runs clusters as groups of processes on this machine. It
// implements provider.Provider, Killer, LogReader, Poller, Finder,
// StepChecker and Notifier, and is safe for concurrent use.
type Provider struct {
	dir              string
	bootTime         time.Duration
	fallbackBootTime time.Duration
	pollInterval     time.Duration
	clock            clock.Clock
	log              *slog.Logger
	// procfs is false where /proc is missing: liveness then rests on
	// signal 0 alone.
	procfs bool
	// startTimeout and stepLockWait are the package's; tests shorten them.
	startTimeout time.Duration
	stepLockWait time.Duration
	// finished holds the steps ListSteps has seen end for good.
	finished *finishedSteps
	// notice is what Notify was given, called when a wrapper this
	// Provider started ends.
	notice atomic.Pointer[func(clusterID string)]
	// submitHook, set only by tests, is called at the hook points of
	// SubmitStep with the step's id and its wrapper's pid, so that a test
	// can crash the server there.
	submitHook func(point, stepID string, pid int)
}

var (
	_ provider.Provider    = (*Provider)(nil)
	_ provider.Killer      = (*Provider)(nil)
	_ provider.LogReader   = (*Provider)(nil)
	_ provider.Poller      = (*Provider)(nil)
	_ provider.Finder      = (*Provider)(nil)
	_ provider.StepChecker = (*Provider)(nil)
	_ provider.Notifier    = (*Provider)(nil)
)

// New returns a Provider keeping its state under opts.Dir.
func New(opts Options) (*Provider, error) {
	if opts.Dir == "" {
		return nil, fmt.Errorf("local provider: dir is required: %w", berth.ErrInvalid)
	}
	if opts.BootTime < 0 || opts.FallbackBootTime < 0 || opts.PollInterval < 0 {
		return nil, fmt.Errorf("local provider: boot_time, fallback boot_time and poll_interval must not be negative: %w", berth.ErrInvalid)
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("local provider: resolve dir %q: %w", opts.Dir, err)
	}
	for _, d := range []string{filepath.Join(dir, "clusters"), filepath.Join(dir, "tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("local provider: create %s: %w", d, err)
		}
	}
	p := &Provider{
		dir:              dir,
		bootTime:         opts.BootTime,
		fallbackBootTime: opts.FallbackBootTime,
		pollInterval:     opts.PollInterval,
		clock:            opts.Clock,
		log:              opts.Log,
		startTimeout:     startTimeout,
		stepLockWait:     stepLockWait,
		finished:         newFinishedSteps(),
	}
	if p.fallbackBootTime == 0 {
		p.fallbackBootTime = p.bootTime
	}
	if p.pollInterval == 0 {
		p.pollInterval = DefaultPollInterval
	}
	if p.clock == nil {
		p.clock = clock.Real{}
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if _, err := os.Stat("/proc/self/stat"); err == nil {
		p.procfs = true
	}
	return p, nil
}

// PollInterval says how often the service should poll a local cluster.
func (p *Provider) PollInterval() time.Duration { return p.pollInterval }

// Notify makes p call fn with a cluster's id when the wrapper of a step
// that p started on it ends: by then the wrapper has put its exit status,
// if it wrote one, in place. A wrapper that a Provider adopted after a
// restart is not its child, and its end is not noticed: polls find it.
func (p *Provider) Notify(fn func(clusterID string)) {
	if fn == nil {
		p.notice.Store(nil)
		return
	}
	p.notice.Store(&fn)
}

func (p *Provider) notify(clusterID string) {
	if fn := p.notice.Load(); fn != nil {
		(*fn)(clusterID)
	}
}

// clusterRecord is cluster.json.
type clusterRecord struct {
	ID        string         `json:"id"`
	Pool      string         `json:"pool"`
	Slots     int            `json:"slots"`
	Fallback  bool           `json:"fallback,omitempty"`
	CreatedAt time.Time      `json:"created_at"`
	BootTime  berth.Duration `json:"boot_time"`
	State     string         `json:"state"`
	Reason    string         `json:"reason,omitempty"`
	Capacity  bool           `json:"capacity,omitempty"`
	EndedAt   time.Time      `json:"ended_at,omitzero"`
}

func (c *clusterRecord) ended() bool { return c.State != recordRunning }

// state is the cluster's state at now.
func (c *clusterRecord) state(now time.Time) berth.ClusterState {
	switch c.State {
	case recordTerminated:
		return berth.ClusterTerminated
	case recordLost:
		return berth.ClusterLost
	}
	if now.Before(c.CreatedAt.Add(c.BootTime.Std())) {
		return berth.ClusterStarting
	}
	return berth.ClusterReady
}

func (p *Provider) clustersDir() string         { return filepath.Join(p.dir, "clusters") }
func (p *Provider) clusterDir(id string) string { return filepath.Join(p.dir, "clusters", id) }
func (p *Provider) stepsDir(id string) string   { return filepath.Join(p.dir, "clusters", id, "steps") }
func (p *Provider) endedDir(id string) string   { return filepath.Join(p.dir, "clusters", id, "ended") }

// workDir is the working directory of a step that names none: in a tree
// of its own, apart from the clusters' records (see doc.go).
func (p *Provider) workDir(clusterID, stepID string) string {
	return filepath.Join(p.dir, "workdirs", clusterID, stepID)
}

func checkClusterID(id string) error {
	if !berth.ValidID(id) {
		return fmt.Errorf("local cluster id %q: %w", id, berth.ErrInvalid)
	}
	return nil
}

// errUnknownCluster speaks both the provider's word for an id it never
// issued and berth's, so that the API can map it without knowing providers.
func errUnknownCluster(id string) error {
	return fmt.Errorf("local cluster %s: %w", id, provider.ErrUnknownCluster)
}

// CreateCluster records a new cluster; it has nothing to start, as its
// readiness follows from its creation time. It is idempotent per
// req.ClusterID while the cluster lives.
func (p *Provider) CreateCluster(ctx context.Context, req provider.CreateRequest) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if err := checkClusterID(req.ClusterID); err != nil {
		return "", fmt.Errorf("create cluster: %w", err)
	}
	if req.Slots < 1 {
		return "", fmt.Errorf("create cluster %s: slots must be at least 1, got %d: %w", req.ClusterID, req.Slots, berth.ErrInvalid)
	}
	if c, err := p.readCluster(req.ClusterID); err == nil {
		return p.existingCluster(c)
	} else if !errors.Is(err, provider.ErrUnknownCluster) {
		return "", fmt.Errorf("create cluster %s: %w", req.ClusterID, err)
	}

	boot := p.bootTime
	if req.Fallback {
		boot = p.fallbackBootTime
	}
	rec := clusterRecord{
		ID:        req.ClusterID,
		Pool:      req.Pool,
		Slots:     req.Slots,
		Fallback:  req.Fallback,
		CreatedAt: p.clock.Now(),
		BootTime:  berth.Duration(boot),
		State:     recordRunning,
	}
	tmp, err := os.MkdirTemp(filepath.Join(p.dir, "tmp"), "cluster-")
	if err != nil {
		return "", fmt.Errorf("create cluster %s: %w", req.ClusterID, err)
	}
	if err := buildClusterDir(tmp, &rec); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("create cluster %s: %w", req.ClusterID, err)
	}
	if err := os.Rename(tmp, p.clusterDir(req.ClusterID)); err != nil {
		os.RemoveAll(tmp)
		if errors.Is(err, fs.ErrExist) {
			// Another caller created it first.
			c, rerr := p.readCluster(req.ClusterID)
			if rerr != nil {
				return "", fmt.Errorf("create cluster %s: %w", req.ClusterID, rerr)
			}
			return p.existingCluster(c)
		}
		return "", fmt.Errorf("create cluster %s: %w", req.ClusterID, err)
	}
	if err := syncDir(p.clustersDir()); err != nil {
		return "", fmt.Errorf("create cluster %s: %w", req.ClusterID, err)
	}
	p.log.Info("local cluster created", "cluster_id", rec.ID, "pool", rec.Pool, "slots", rec.Slots,
		"fallback", rec.Fallback, "boot_time", boot.String())
	return rec.ID, nil
}

func (p *Provider) existingCluster(c *clusterRecord) (string, error) {
	if c.ended() {
		return "", fmt.Errorf("create cluster %s: it already ran and is %s: %w", c.ID, c.State, berth.ErrConflict)
	}
	return c.ID, nil
}

func buildClusterDir(dir string, rec *clusterRecord) error {
	if err := os.Mkdir(filepath.Join(dir, "steps"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "lock"), nil, 0o644); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(dir, "cluster.json"), rec); err != nil {
		return err
	}
	return syncDir(dir)
}

// DescribeCluster reports a cluster's state; an id with no directory is
// reported lost.
func (p *Provider) DescribeCluster(ctx context.Context, id string) (provider.Cluster, error) {
	if err := ctx.Err(); err != nil {
		return provider.Cluster{}, err
	}
	if err := checkClusterID(id); err != nil {
		return provider.Cluster{}, fmt.Errorf("describe cluster: %w", err)
	}
	c, err := p.readCluster(id)
	if errors.Is(err, provider.ErrUnknownCluster) {
		p.finished.drop(id)
		return provider.Cluster{ID: id, State: berth.ClusterLost, Reason: ReasonUnknown}, nil
	}
	if err != nil {
		return provider.Cluster{}, fmt.Errorf("describe cluster %s: %w", id, err)
	}
	if c.ended() {
		// Ended elsewhere, perhaps by another Provider on the same Dir.
		p.finished.drop(id)
	}
	return provider.Cluster{ID: id, State: c.state(p.clock.Now()), Reason: c.Reason, Class: lossClass(c.Capacity)}, nil
}

// TerminateCluster marks the cluster terminated and kills every step's
// process group. It is idempotent, and kills again on a repeat call in case
// a crash came between the two.
func (p *Provider) TerminateCluster(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkClusterID(id); err != nil {
		return fmt.Errorf("terminate cluster: %w", err)
	}
	err := p.endCluster(id, func(c *clusterRecord) {
		c.State, c.Reason = recordTerminated, reasonTerminated
	})
	p.finished.drop(id)
	if errors.Is(err, provider.ErrUnknownCluster) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("terminate cluster %s: %w", id, err)
	}
	return nil
}

// KillCluster makes the cluster die as if its spot capacity were reclaimed:
// every step is killed without the chance to record an exit status, and the
// cluster is lost with Capacity set. A cluster that already ended is left
// as it is.
func (p *Provider) KillCluster(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkClusterID(id); err != nil {
		return fmt.Errorf("kill cluster: %w", err)
	}
	err := p.endCluster(id, func(c *clusterRecord) {
		c.State, c.Reason, c.Capacity = recordLost, ReasonKilled, true
	})
	p.finished.drop(id)
	if err != nil {
		return fmt.Errorf("kill cluster %s: %w", id, err)
	}
	return nil
}

// endCluster records end (if the cluster still runs) and then SIGKILLs every
// step. The record comes first: a crash between the two leaves an ended
// cluster whose steps a repeated call kills, never a live cluster whose
// steps died for no recorded reason.
func (p *Provider) endCluster(id string, end func(*clusterRecord)) error {
	unlock, err := p.lockCluster(id, syscall.LOCK_EX)
	if err != nil {
		return err
	}
	defer unlock()
	c, err := p.readCluster(id)
	if err != nil {
		return err
	}
	if !c.ended() {
		end(c)
		c.EndedAt = p.clock.Now()
		if err := writeJSON(filepath.Join(p.clusterDir(id), "cluster.json"), c); err != nil {
			return fmt.Errorf("record end: %w", err)
		}
		p.log.Info("local cluster ended", "cluster_id", id, "state", c.State, "reason", c.Reason)
	}
	ids, err := p.stepIDs(id)
	if err != nil {
		return err
	}
	var errs []error
	for _, sid := range ids {
		pr, err := readProc(filepath.Join(p.stepsDir(id), sid))
		if errors.Is(err, fs.ErrNotExist) {
			// Its submitter died before the gate: the wrapper runs
			// nothing and has exited, or is about to.
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("step %s: %w", sid, err))
			continue
		}
		if err := p.signalGroup(pr, syscall.SIGKILL); err != nil {
			errs = append(errs, fmt.Errorf("kill step %s: %w", sid, err))
		}
	}
	return errors.Join(errs...)
}

// FindCluster reports whether a live cluster was created for clusterID
// (the local provider's id for a cluster is Berth's own).
func (p *Provider) FindCluster(ctx context.Context, clusterID string) (string, bool, error) {
	if err := checkClusterID(clusterID); err != nil {
		return "", false, fmt.Errorf("find cluster: %w", err)
	}
	c, err := p.readCluster(clusterID)
	if errors.Is(err, provider.ErrUnknownCluster) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("find cluster %s: %w", clusterID, err)
	}
	if c.ended() {
		return "", false, nil
	}
	return clusterID, true, nil
}

// readCluster reads cluster.json; a missing cluster directory is
// provider.ErrUnknownCluster.
func (p *Provider) readCluster(id string) (*clusterRecord, error) {
	var c clusterRecord
	err := readJSON(filepath.Join(p.clusterDir(id), "cluster.json"), &c)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errUnknownCluster(id)
	}
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// lockCluster takes the cluster's flock, exclusive (LOCK_EX) for writers
// and shared (LOCK_SH) for readers that need a consistent view of its
// steps. Closing the file releases it.
func (p *Provider) lockCluster(id string, how int) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(p.clusterDir(id), "lock"), os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errUnknownCluster(id)
	}
	if err != nil {
		return nil, fmt.Errorf("open cluster lock: %w", err)
	}
	if err := flock(f, how); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock cluster: %w", err)
	}
	return func() { f.Close() }, nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(b, '\n'))
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("read %s: %w", filepath.Base(path), err)
	}
	return nil
}

// lossClass is the failure class of a recorded loss.
func lossClass(capacity bool) provider.Class {
	if capacity {
		return provider.ClassCapacity
	}
	return ""
}
