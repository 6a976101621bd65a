// Package server assembles one Berth server from a configuration: the
// store, a provider per pool, the service's loop and the HTTP API. Both
// `berth serve` and `berth demo` run one.
package server

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/berthhq/berth/internal/api"
	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/clock"
	"github.com/berthhq/berth/internal/config"
	"github.com/berthhq/berth/internal/provider"
	"github.com/berthhq/berth/internal/provider/emr"
	"github.com/berthhq/berth/internal/provider/local"
	"github.com/berthhq/berth/internal/provider/sim"
	"github.com/berthhq/berth/internal/service"
	"github.com/berthhq/berth/internal/store"
	"github.com/berthhq/berth/internal/store/sqlite"
)

// shutdownGrace bounds how long in-flight HTTP requests (long polls among
// them) may take to finish when the server stops.
const shutdownGrace = 5 * time.Second

// Options tunes a server beyond its configuration; the zero value is what
// `berth serve` uses.
type Options struct {
	Log   *slog.Logger
	Clock clock.Clock
	// Tick and RetryBackoff override the service's defaults (tests and the
	// demo shorten them).
	Tick         time.Duration
	RetryBackoff time.Duration
	// EMRCredentials, when set, sign EMR pools' calls instead of AWS's
	// credential chain (the demo's embedded emulator).
	EMRCredentials aws.CredentialsProvider
	// EMRRateScale raises Berth's client-side EMR rate limits by this
	// factor (an emulator's limits; 0 is 1, EMR's defaults).
	EMRRateScale float64
}

// Server is one running Berth.
type Server struct {
	log   *slog.Logger
	store store.Store
	svc   *service.Service
	http  *http.Server
	ln    net.Listener
	done  chan error
}

// New opens the store and builds the providers and the service; Start runs
// them.
func New(ctx context.Context, cfg *config.Config, o Options) (*Server, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.EMRRateScale < 0 {
		return nil, fmt.Errorf("server: EMR rate scale %g: must not be negative", o.EMRRateScale)
	}
	st, err := openStore(ctx, cfg.Store, o.Log)
	if err != nil {
		return nil, err
	}
	inst, err := st.Installation(ctx, berth.NewID("inst", o.Clock.Now()))
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("store %q: %w", cfg.Store, err)
	}
	b := &builder{o: o, installation: inst, limiters: map[[2]string]*emr.Limiter{}}
	var pools []service.Pool
	for _, p := range cfg.Pools {
		prov, err := b.provider(ctx, p)
		if err != nil {
			st.Close()
			return nil, fmt.Errorf("pool %q: %w", p.Name, err)
		}
		pools = append(pools, service.Pool{Pool: p.Domain(), Provider: prov, TerminateStrays: p.EMR != nil && p.EMR.TerminateStrays,
			BootTime: expectedBoot(p, prov)})
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	svc, err := service.New(service.Options{
		Store: st, Pools: pools, Clock: o.Clock, Log: o.Log, Registry: reg,
		Tick: o.Tick, RetryBackoff: o.RetryBackoff,
	})
	if err != nil {
		st.Close()
		return nil, err
	}
	handler := api.New(api.Options{
		Service: svc,
		Token:   cfg.Token,
		Log:     o.Log,
		Metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		Pprof:   cfg.Pprof,
	})
	return &Server{
		log:   o.Log,
		store: st,
		svc:   svc,
		http:  &http.Server{Addr: cfg.Listen, Handler: handler, ReadHeaderTimeout: 10 * time.Second},
	}, nil
}

func openStore(ctx context.Context, dsn string, log *slog.Logger) (store.Store, error) {
	path, err := sqlite.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("store %q: %w", dsn, err)
	}
	st, err := sqlite.Open(ctx, path, log)
	if err != nil {
		return nil, fmt.Errorf("open store %q: %w", dsn, err)
	}
	return st, nil
}

// builder builds the pools' providers.
type builder struct {
	o Options
	// installation names this Berth in what providers start.
	installation string
	// limiters holds the rate limiter of each EMR endpoint and region:
	// EMR counts the calls of every pool there against one budget.
	limiters map[[2]string]*emr.Limiter
}

// provider builds the provider that runs one pool's clusters.
func (b *builder) provider(ctx context.Context, p config.Pool) (provider.Provider, error) {
	o := b.o
	switch p.Provider {
	case config.ProviderLocal:
		opts := local.Options{Dir: config.DefaultLocalDir, Clock: o.Clock, Log: o.Log.With("pool", p.Name)}
		if p.Local != nil {
			opts.Dir, opts.BootTime, opts.PollInterval = p.Local.Dir, p.Local.BootTime.Std(), p.Local.PollInterval.Std()
		}
		if fb := p.FallbackLocal(); fb != nil {
			opts.FallbackBootTime = fb.BootTime.Std()
		}
		return local.New(opts)
	case config.ProviderEMR:
		return b.emr(ctx, p)
	case config.ProviderSim:
		return newSim(p, o)
	}
	return nil, fmt.Errorf("unknown provider %q", p.Provider)
}

// emr builds an EMR provider. Its calls draw on the rate limiter that
// every pool of its region and endpoint shares.
func (b *builder) emr(ctx context.Context, p config.Pool) (*emr.Provider, error) {
	o := b.o
	key := [2]string{p.EMR.Endpoint, p.EMR.Region}
	lim := b.limiters[key]
	if lim == nil {
		lim = emr.NewScaledLimiter(o.Clock, max(o.EMRRateScale, 1))
		b.limiters[key] = lim
	}
	var load []func(*awsconfig.LoadOptions) error
	if o.EMRCredentials != nil {
		load = append(load, awsconfig.WithCredentialsProvider(o.EMRCredentials))
	}
	cl, err := emr.NewClients(ctx, p.EMR, lim, load...)
	if err != nil {
		return nil, err
	}
	installation := b.installation
	return emr.New(emr.Options{
		Pool: p.Name, Primary: p.EMR, Fallback: p.FallbackEMR(), IdleTimeout: idleBackstop(p),
		Installation: installation, EMR: cl.EMR, S3: cl.S3, Limiter: lim,
		PollBase: p.EMR.PollInterval.Std(),
		Clock:    o.Clock, Log: o.Log.With("pool", p.Name),
	})
}

// idleBackstop is the idle time after which EMR ends a pool's cluster by
// itself, should Berth be down: the pool's idle_timeout, except for a pool
// with min_clusters, whose idle clusters Berth keeps on purpose and EMR
// must not end.
func idleBackstop(p config.Pool) time.Duration {
	switch {
	case p.MinClusters > 0:
		return 0
	case p.IdleTimeout.Auto():
		// Berth ends idle clusters within a boot time; down, it cannot
		// judge, and the default is what a person would set.
		return config.DefaultIdleTimeout
	}
	return p.IdleTimeout.Std()
}

// newSim builds a sim provider on the server's clock. A sim cluster lives
// only as long as the server: after a restart the store's clusters are
// unknown to the new provider, so reported lost. Each start therefore gets
// ids of its own, so that a new cluster never takes an old one's id, and a
// seed of its own: serving is not meant to replay.
func newSim(p config.Pool, o Options) (*sim.Provider, error) {
	start := o.Clock.Now().UnixNano()
	h := fnv.New64a()
	h.Write([]byte(p.Name))
	opts := SimOptions(p)
	opts.Seed = uint64(start) ^ h.Sum64()
	opts.IDPrefix = "sim-" + strconv.FormatInt(start, 36)
	opts.Clock, opts.Log = o.Clock, o.Log.With("pool", p.Name)
	return sim.New(opts)
}

// SimOptions is how a sim pool's clusters behave, as its configuration
// says: the models of its sim block and its fallback's, its price and
// poll interval. The caller gives the clock, seed and ids.
func SimOptions(p config.Pool) sim.Options {
	spec := p.Sim
	if spec == nil {
		spec = &config.SimSpec{}
	}
	opts := sim.Options{Primary: simModel(spec), PricePerHour: p.PricePerHour, PollInterval: spec.PollInterval.Std()}
	if fb := p.FallbackSim(); fb != nil {
		m := simModel(fb)
		opts.Fallback = &m
	}
	return opts
}

// expectedBoot is how long a new cluster of the pool should take until
// Berth sees it ready, as its configuration says: the simulated boot time
// of a local or sim pool and a poll. Zero for EMR, whose boot times are
// only learned.
func expectedBoot(p config.Pool, prov provider.Provider) time.Duration {
	var boot time.Duration
	switch {
	case p.Local != nil:
		boot = p.Local.BootTime.Std()
	case p.Sim != nil:
		boot = p.Sim.BootTime.Std()
	default:
		return 0
	}
	poll := provider.DefaultPollInterval
	if pp, ok := prov.(provider.Poller); ok {
		poll = pp.PollInterval()
	}
	return boot + poll
}

// simModel is the sim provider's model of a sim block.
func simModel(s *config.SimSpec) sim.Model {
	return sim.Model{
		BootTime:           sim.Fixed(s.BootTime.Std()),
		TerminateTime:      sim.Fixed(s.TerminateTime.Std()),
		StepTime:           sim.Fixed(s.StepTime.Std()),
		LossPerClusterHour: s.LossPerClusterHour,
	}
}

// Start runs the service's loop (which first adopts what the providers
// still run) and then serves HTTP.
func (s *Server) Start(ctx context.Context) error {
	if err := s.svc.Start(ctx); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.http.Addr)
	if err != nil {
		s.svc.Stop()
		return fmt.Errorf("listen on %s: %w", s.http.Addr, err)
	}
	s.ln, s.done = ln, make(chan error, 1)
	go func() { s.done <- s.http.Serve(ln) }()
	s.log.Info("berth serving", "addr", ln.Addr().String())
	return nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is the server's base URL.
func (s *Server) URL() string { return "http://" + s.Addr() }

// Service is the server's service.
func (s *Server) Service() *service.Service { return s.svc }

// Stop stops serving, lets the loop finish the write in progress and
// closes the store. Clusters and steps keep running, to be adopted by the
// next start.
func (s *Server) Stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	// Long polls answer first, so that the requests Shutdown waits for
	// are the short ones.
	s.svc.EndWaits()
	herr := s.http.Shutdown(ctx)
	if errors.Is(herr, context.DeadlineExceeded) {
		// Requests still open after the grace (a long poll, a client that
		// dialled and never spoke) are cut: their clients retry.
		herr = s.http.Close()
	}
	if herr != nil {
		herr = fmt.Errorf("stop http: %w", herr)
	}
	s.svc.Stop()
	return errors.Join(herr, s.store.Close())
}

// Run starts a server and stops it when ctx ends.
func Run(ctx context.Context, cfg *config.Config, o Options) error {
	s, err := New(ctx, cfg, o)
	if err != nil {
		return err
	}
	if err := s.Start(ctx); err != nil {
		s.store.Close()
		return err
	}
	select {
	case <-ctx.Done():
		s.log.Info("stopping")
	case err := <-s.done:
		s.log.Error("http server ended", "err", err)
	}
	return s.Stop()
}
