// Package config reads the one YAML file that configures `berth serve`: where
// to listen, where to keep state, and the pools of clusters Berth manages.
//
// Parse is the whole pipeline: decode strictly (an unknown field, or a value
// that does not fit its field, is an error naming its pool, field and line),
// fill in the defaults for fields the file left out, then Validate every
// field, so that a user sees every mistake in one go, each naming its pool
// and field. Default is the embedded default.yaml that `berth serve` runs
// without --config.
package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/berthhq/berth/internal/berth"
)

// Defaults for fields a configuration file leaves out.
const (
	DefaultListen   = "127.0.0.1:8080"
	DefaultStore    = "sqlite://berth.db"
	DefaultLogLevel = "info"

	DefaultSlots       = 1
	DefaultMinClusters = 0
	// DefaultMaxClusters applies when max_clusters is absent, raised to
	// min_clusters when that is larger, so that min_clusters alone is
	// never an error.
	DefaultMaxClusters      = 1
	DefaultIdleTimeout      = 10 * time.Minute
	DefaultBootTimeoutEMR   = 20 * time.Minute
	DefaultBootTimeoutLocal = 1 * time.Minute
	// DefaultMaxLifetime of zero means clusters are never recycled for age.
	DefaultMaxLifetime  time.Duration = 0
	DefaultPricePerHour               = 0.0

	// DefaultLocalDir is where local clusters keep their processes' state,
	// relative to the working directory.
	DefaultLocalDir = "berth-local"
	// DefaultLocalBootTime is the simulated provisioning delay of a local
	// cluster.
	DefaultLocalBootTime time.Duration = 0

	// DefaultEMRServiceRole and DefaultEMRJobFlowRole are the roles
	// `aws emr create-default-roles` makes.
	DefaultEMRServiceRole = "EMR_DefaultRole"
	DefaultEMRJobFlowRole = "EMR_EC2_DefaultRole"
	// DefaultMarket is EMR's own default for an instance group.
	DefaultMarket = MarketOnDemand
)

// Providers a pool may name.
const (
	ProviderLocal = "local"
	ProviderEMR   = "emr"
)

// Store schemes. Validation accepts both; whether the server can open a
// postgres store is the server's to say.
const (
	StoreSQLite   = "sqlite"
	StorePostgres = "postgres"
)

// Log levels, as written in the file.
var logLevels = map[string]slog.Level{
	"debug": slog.LevelDebug,
	"info":  slog.LevelInfo,
	"warn":  slog.LevelWarn,
	"error": slog.LevelError,
}

// Config is the whole configuration of `berth serve`.
type Config struct {
	// Listen is the host:port the HTTP API listens on. An empty host
	// listens on every interface. Default DefaultListen.
	Listen string `yaml:"listen"`
	// Store says where Berth keeps its state: sqlite://PATH (a relative PATH
	// is relative to the working directory) or postgres://... Default
	// DefaultStore.
	Store string `yaml:"store"`
	// Token, when set, is the bearer token every /v1 request must carry.
	// Empty leaves the API open, which is only sensible on loopback.
	Token string `yaml:"token,omitempty"`
	// LogLevel is one of debug, info, warn, error. Default info.
	LogLevel string `yaml:"log_level"`
	// Pprof serves Go's profiler at /debug/pprof/, behind the token when
	// one is set, so that a live server can be profiled. Off by default:
	// it shows how the server works, and a profile costs CPU while it runs.
	Pprof bool `yaml:"pprof,omitempty"`
	// Pools are the cluster templates jobs name; at least one is required
	// and their names are unique.
	Pools []Pool `yaml:"pools"`
}

// Pool is a named cluster template and its scaling policy.
type Pool struct {
	// Name is what jobs name: [a-z0-9][a-z0-9-_]{0,62}.
	Name string `yaml:"name"`
	// Provider is "local", "emr" or "sim".
	Provider string `yaml:"provider"`
	// Slots is how many jobs one cluster runs at once, 1..256 (on EMR the
	// cluster's StepConcurrencyLevel). Default 1.
	Slots int `yaml:"slots"`
	// MinClusters are kept up even with no work. Default 0.
	MinClusters int `yaml:"min_clusters"`
	// MaxClusters caps the pool, 1..1000. Default 1, or MinClusters when
	// that is larger.
	MaxClusters int `yaml:"max_clusters"`
	// IdleTimeout is how long a cluster may sit without jobs before it is
	// drained; zero drains it as soon as it is idle; "auto" (IdleAuto)
	// lets Berth judge from the work it expects. Default 10m.
	IdleTimeout IdleTimeout `yaml:"idle_timeout"`
	// BootTimeout is how long a cluster may take to become ready before it
	// counts as lost. Must be above zero. Default 20m for emr and sim, 1m
	// for local.
	BootTimeout Duration `yaml:"boot_timeout"`
	// MaxLifetime recycles (drains) a cluster older than this; zero never
	// does. Default 0.
	MaxLifetime Duration `yaml:"max_lifetime"`
	// PricePerHour of one cluster, in whatever currency the user thinks in;
	// costs are derived from it. Default 0.
	PricePerHour float64 `yaml:"price_per_hour"`
	// Local is the spec of a local pool; defaults are filled in when the
	// file has none. Nil on other pools.
	Local *LocalSpec `yaml:"local,omitempty"`
	// EMR is the spec of an emr pool; required there, nil elsewhere.
	EMR *EMRSpec `yaml:"emr,omitempty"`
	// Sim is the spec of a sim pool (see sim.go); defaults are filled in
	// when the file has none. Nil on other pools.
	Sim *SimSpec `yaml:"sim,omitempty"`
	// Fallback is the spec used after repeated capacity failures; nil when
	// the pool has none.
	Fallback *Fallback `yaml:"fallback,omitempty"`
}

// LocalSpec is how a local cluster (processes on this machine) is made.
type LocalSpec struct {
	// BootTime is the simulated provisioning delay before a cluster is
	// ready. It must be below the pool's boot_timeout. Default 0.
	BootTime Duration `yaml:"boot_time"`
	// Dir is where local clusters keep their processes' state; a relative
	// path is relative to the working directory. Default "berth-local".
	Dir string `yaml:"dir,omitempty"`
	// PollInterval is how often Berth looks at each local cluster: the
	// most it takes to notice a step ended. 0 means the local provider's
	// default (200ms).
	PollInterval Duration `yaml:"poll_interval,omitempty"`
}

// Fallback is the spec a pool switches to when AfterFailures capacity
// failures (spot reclaim, insufficient capacity) come within For, and keeps
// for For. Its spec must be of the pool's provider. See Pool.FallbackEMR,
// Pool.FallbackLocal and Pool.FallbackSim for how it is merged with the
// primary spec.
type Fallback struct {
	// AfterFailures is how many capacity failures switch the pool, ≥ 1.
	AfterFailures int `yaml:"after_failures"`
	// For is both the window the failures are counted in and how long the
	// fallback spec stays in force, > 0.
	For   Duration   `yaml:"for"`
	Local *LocalSpec `yaml:"local,omitempty"`
	EMR   *EMRSpec   `yaml:"emr,omitempty"`
	Sim   *SimSpec   `yaml:"sim,omitempty"`
}

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML returns the text of the embedded default configuration, a
// commented example users can copy.
func DefaultYAML() []byte { return bytes.Clone(defaultYAML) }

// Default returns the embedded default configuration that `berth serve`
// runs without --config: a SQLite file in the working directory, the API on
// loopback and one local pool named "default". Each call returns a new
// value the caller may change.
func Default() *Config {
	c, err := Parse(defaultYAML)
	if err != nil {
		// The tests parse default.yaml; this cannot happen in a built binary.
		panic(fmt.Sprintf("config: embedded default.yaml: %v", err))
	}
	return c
}

// Load reads, parses and validates the configuration file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes a configuration, fills in the defaults of absent fields and
// validates the result. Its errors wrap berth.ErrInvalid.
func Parse(data []byte) (*Config, error) {
	doc, err := readDocument(data)
	if err != nil {
		return nil, invalid(fmt.Errorf("parse: %w", err))
	}
	var c Config
	var bad []*FieldError
	if doc != nil {
		// An empty file has no document: the defaults apply and Validate
		// asks for a pool.
		if bad, err = decode(doc, &c); err != nil {
			return nil, invalid(fmt.Errorf("parse: %w", err))
		}
	}
	c.applyDefaults(presentPoolKeys(doc))
	errs := make([]error, 0, len(bad))
	for _, e := range bad {
		errs = append(errs, e)
	}
	for _, e := range c.fieldErrors() {
		if !after(e, bad) {
			errs = append(errs, e)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &c, nil
}

// Level is the slog level LogLevel names; info when it names none.
func (c *Config) Level() slog.Level {
	if l, ok := logLevels[c.LogLevel]; ok {
		return l
	}
	return slog.LevelInfo
}

// SplitStore splits Store into its scheme ("sqlite", "postgres") and the
// rest: the file path for sqlite, the whole URL for postgres (which its
// driver wants as is).
func (c *Config) SplitStore() (scheme, rest string) {
	scheme, path, ok := strings.Cut(c.Store, "://")
	if !ok {
		return "", c.Store
	}
	switch scheme {
	case StoreSQLite:
		return StoreSQLite, path
	case StorePostgres, "postgresql":
		return StorePostgres, c.Store
	}
	return scheme, path
}

// Pool returns the pool named name.
func (c *Config) Pool(name string) (Pool, bool) {
	for _, p := range c.Pools {
		if p.Name == name {
			return p, true
		}
	}
	return Pool{}, false
}

// Domain is the scheduler's view of the pool.
func (p Pool) Domain() berth.Pool {
	d := berth.Pool{
		Name:         p.Name,
		Provider:     p.Provider,
		Slots:        p.Slots,
		MinClusters:  p.MinClusters,
		MaxClusters:  p.MaxClusters,
		IdleTimeout:  p.IdleTimeout.Std(),
		IdleAuto:     p.IdleTimeout.Auto(),
		BootTimeout:  p.BootTimeout.Std(),
		MaxLifetime:  p.MaxLifetime.Std(),
		PricePerHour: p.PricePerHour,
	}
	if p.Fallback != nil {
		d.Fallback = &berth.Fallback{AfterFailures: p.Fallback.AfterFailures, For: p.Fallback.For.Std()}
	}
	return d
}

// FallbackLocal is the local spec a cluster of the pool is built from while
// its fallback is in force: the fallback's boot_time replaces the
// primary's, and an empty fallback dir is the primary's. Nil when the pool
// has no local fallback.
func (p Pool) FallbackLocal() *LocalSpec {
	if p.Fallback == nil || p.Fallback.Local == nil {
		return nil
	}
	fb := *p.Fallback.Local
	if fb.Dir == "" && p.Local != nil {
		fb.Dir = p.Local.Dir
	}
	return &fb
}

// FallbackEMR is the EMR spec a cluster of the pool is built from while its
// fallback is in force, a deep copy the caller may change. Instance groups
// and instance fleets go together: if the fallback gives either, it
// replaces both of the primary's; if it gives neither, the primary's are
// kept. Every other field the fallback leaves empty (a string, list or map
// with nothing in it) is the primary's: region, endpoint, release_label,
// applications, service_role, job_flow_role, log_uri, bootstrap_actions,
// configurations, tags, subnet_id and key_name. Nil when the pool has no EMR
// fallback.
func (p Pool) FallbackEMR() *EMRSpec {
	if p.Fallback == nil || p.Fallback.EMR == nil {
		return nil
	}
	return mergeEMR(p.EMR, p.Fallback.EMR)
}

// invalidError marks an error as berth.ErrInvalid without putting the
// sentinel's text into a message meant for a person.
type invalidError struct{ err error }

func invalid(err error) error { return invalidError{err} }

func (e invalidError) Error() string   { return e.err.Error() }
func (e invalidError) Unwrap() []error { return []error{e.err, berth.ErrInvalid} }
