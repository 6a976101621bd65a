package config

import (
	"math"
	"time"
)

// ProviderSim is the provider of simulated clusters, which runs on the
// wall clock in `berth serve`.
const ProviderSim = "sim"

// DefaultBootTimeoutSim is EMR's default: a sim pool stands in for one,
// and its boot_time may model EMR's minutes.
const DefaultBootTimeoutSim = DefaultBootTimeoutEMR

// SimSpec is how the clusters of a sim pool behave (see the sim provider's
// package documentation for the model). Every field defaults to zero: a
// cluster ready at once that is never lost, whose steps other than
// ["sleep", "90s"] and ["fail", "90s"] end at once.
type SimSpec struct {
	// BootTime is how long a new cluster is starting. It must be below the
	// pool's boot_timeout.
	BootTime Duration `yaml:"boot_time"`
	// TerminateTime is how long a cluster is terminating before it is
	// terminated.
	TerminateTime Duration `yaml:"terminate_time"`
	// LossPerClusterHour is the rate of spot reclaims per cluster-hour: 0.1
	// loses about one cluster in ten within its first hour.
	LossPerClusterHour float64 `yaml:"loss_per_cluster_hour"`
	// StepTime is how long a step that is neither sleep nor fail runs.
	StepTime Duration `yaml:"step_time"`
	// PollInterval is how often Berth looks at each sim cluster; 0 means
	// the sim provider's default (1s). Only on the pool's own sim block: it
	// applies to every cluster of the pool.
	PollInterval Duration `yaml:"poll_interval,omitempty"`
}

// FallbackSim is the sim spec of the pool's clusters while its fallback is
// in force: the fallback's sim block as it is — a field it leaves out is
// zero, so an on-demand fallback that gives no loss_per_cluster_hour never
// loses a cluster — with the pool's poll_interval. Nil when the pool has no
// sim fallback.
func (p Pool) FallbackSim() *SimSpec {
	if p.Fallback == nil || p.Fallback.Sim == nil {
		return nil
	}
	fb := *p.Fallback.Sim
	fb.PollInterval = 0
	if p.Sim != nil {
		fb.PollInterval = p.Sim.PollInterval
	}
	return &fb
}

// applySimDefaults gives a sim pool without a sim block the default one.
func (p *Pool) applySimDefaults() {
	if p.Provider == ProviderSim && p.Sim == nil {
		p.Sim = &SimSpec{}
	}
}

// validateSim checks a sim pool's blocks, and that no other pool has one.
func (p Pool) validateSim(ps *problems) {
	if p.Provider != ProviderSim {
		if p.Provider != ProviderLocal && p.Provider != ProviderEMR {
			return // the provider is wrong already; its blocks cannot be judged
		}
		if p.Sim != nil {
			ps.add("sim", "only for sim pools")
		}
		if p.Fallback != nil && p.Fallback.Sim != nil {
			ps.add("fallback.sim", "only for sim pools")
		}
		return
	}
	if p.Local != nil {
		ps.add("local", "only for local pools")
	}
	if p.EMR != nil {
		ps.add("emr", "only for emr pools")
	}
	if p.Sim == nil {
		ps.add("sim", "required for sim pools")
	} else {
		ps.addAll("sim.", p.Sim.validate(p.BootTimeout))
	}
	if p.Fallback == nil {
		return
	}
	if p.Fallback.Local != nil {
		ps.add("fallback.local", "only for local pools")
	}
	if p.Fallback.EMR != nil {
		ps.add("fallback.emr", "only for emr pools")
	}
	fb := p.Fallback.Sim
	if fb == nil {
		ps.add("fallback.sim", "required: the spec a sim pool falls back to")
		return
	}
	if fb.PollInterval != 0 {
		ps.add("fallback.sim.poll_interval", "set it on the pool's sim block: it applies to every cluster of the pool")
	}
	ps.addAll("fallback.sim.", p.FallbackSim().validate(p.BootTimeout))
}

func (s *SimSpec) validate(bootTimeout Duration) problems {
	var ps problems
	switch {
	case s.BootTime < 0:
		ps.add("boot_time", "must be ≥ 0")
	case bootTimeout > 0 && s.BootTime >= bootTimeout:
		ps.add("boot_time", "must be less than the pool's boot_timeout (%s), or every cluster is lost", bootTimeout)
	}
	if s.TerminateTime < 0 {
		ps.add("terminate_time", "must be ≥ 0")
	}
	if !(s.LossPerClusterHour >= 0) || math.IsInf(s.LossPerClusterHour, 0) {
		ps.add("loss_per_cluster_hour", "must be a number ≥ 0 (0: no cluster is ever lost)")
	}
	if s.StepTime < 0 {
		ps.add("step_time", "must be ≥ 0")
	}
	if s.PollInterval < 0 || s.PollInterval > Duration(time.Minute) {
		ps.add("poll_interval", "must be between 0 (the default) and 1m")
	}
	return ps
}
