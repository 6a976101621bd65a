package sim

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Dist is a duration drawn at random: fixed, uniform between two bounds,
// or exponential with a mean. The zero value is a fixed zero. A fixed
// Dist draws nothing from the source, so making a time fixed does not
// shift the draws that follow it.
type Dist struct {
	kind distKind
	a, b time.Duration
}

type distKind uint8

const (
	distFixed distKind = iota
	distUniform
	distExp
)

// Fixed is always d.
func Fixed(d time.Duration) Dist { return Dist{kind: distFixed, a: d} }

// Uniform is drawn evenly from [lo, hi].
func Uniform(lo, hi time.Duration) Dist { return Dist{kind: distUniform, a: lo, b: hi} }

// Exponential is drawn from the exponential distribution with the given
// mean: memoryless, as the time to a failure is usually modelled.
func Exponential(mean time.Duration) Dist { return Dist{kind: distExp, a: mean} }

// Mean is the Dist's expected value.
func (d Dist) Mean() time.Duration {
	if d.kind == distUniform {
		return d.a + (d.b-d.a)/2
	}
	return d.a
}

func (d Dist) String() string {
	switch d.kind {
	case distUniform:
		return fmt.Sprintf("uniform(%s, %s)", d.a, d.b)
	case distExp:
		return fmt.Sprintf("exponential(mean %s)", d.a)
	}
	return d.a.String()
}

func (d Dist) validate() error {
	switch {
	case d.a < 0:
		return fmt.Errorf("%s: must not be negative", d)
	case d.kind == distUniform && d.b < d.a:
		return fmt.Errorf("%s: the upper bound must be ≥ the lower", d)
	}
	return nil
}

func (d Dist) draw(r *rand.Rand) time.Duration {
	switch d.kind {
	case distUniform:
		if d.b == d.a {
			return d.a
		}
		return d.a + time.Duration(r.Int64N(int64(d.b-d.a)+1))
	case distExp:
		return expDuration(r, float64(d.a))
	}
	return d.a
}

// never stands for "later than any simulation runs": an exponential draw
// that would overflow a Duration is clamped to it.
const never = time.Duration(math.MaxInt64)

// expDuration draws from the exponential distribution of mean nanoseconds.
func expDuration(r *rand.Rand, mean float64) time.Duration {
	v := r.ExpFloat64() * mean
	if v >= float64(never) {
		return never
	}
	return time.Duration(v)
}

// Broken says how a spec that can never work fails. The zero value is a
// spec that works.
type Broken uint8

const (
	Works Broken = iota
	// BrokenValidation: CreateCluster is refused with ClassPermanent and
	// Code CodeValidation, as EMR refuses a request it cannot accept (an
	// unknown release label, a missing role).
	BrokenValidation
	// BrokenBootstrap: the cluster is created, boots, and at the end of
	// its boot time is lost with ClassPermanent and ReasonBootstrap, never
	// having been ready, as a cluster whose bootstrap script always fails.
	BrokenBootstrap
)

func (b Broken) String() string {
	switch b {
	case Works:
		return "works"
	case BrokenValidation:
		return "validation"
	case BrokenBootstrap:
		return "bootstrap"
	}
	return fmt.Sprintf("Broken(%d)", uint8(b))
}

// Model is how the clusters of one spec behave.
type Model struct {
	// BootTime is how long a new cluster is starting before it is ready.
	BootTime Dist
	// TerminateTime is how long a cluster is terminating, after
	// TerminateCluster, before it is terminated. It is billed.
	TerminateTime Dist
	// StepTime is how long a step runs that is neither sleep nor fail
	// (see the package documentation).
	StepTime Dist
	// LossPerClusterHour is the rate of spot reclaims: a cluster's time to
	// loss, from its creation, is exponential with this rate per hour. 0
	// never loses one.
	LossPerClusterHour float64
	// CapacityShortage is the probability that CreateCluster is refused
	// with ClassCapacity and Code CodeCapacity.
	CapacityShortage float64
	// Broken makes the spec one that can never work.
	Broken Broken
	// LossReportLag is how long after a loss the cluster is still
	// described as alive, while its steps have already failed: EMR reports
	// a step's failure before its cluster's state changes.
	LossReportLag time.Duration
}

func (m Model) validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		d    Dist
	}{{"boot time", m.BootTime}, {"terminate time", m.TerminateTime}, {"step time", m.StepTime}} {
		if err := f.d.validate(); err != nil {
			errs = append(errs, fmt.Errorf("%s %w", f.name, err))
		}
	}
	if !(m.LossPerClusterHour >= 0) || math.IsInf(m.LossPerClusterHour, 0) {
		errs = append(errs, fmt.Errorf("loss per cluster-hour %v: must be a number ≥ 0", m.LossPerClusterHour))
	}
	if !probability(m.CapacityShortage) {
		errs = append(errs, fmt.Errorf("capacity shortage %v: must be a probability, 0..1", m.CapacityShortage))
	}
	if m.LossReportLag < 0 {
		errs = append(errs, fmt.Errorf("loss report lag %s: must not be negative", m.LossReportLag))
	}
	if m.Broken > BrokenBootstrap {
		errs = append(errs, fmt.Errorf("broken: unknown mode %d", m.Broken))
	}
	return errors.Join(errs...)
}

// lossAfter draws a cluster's time to loss; never for a rate of 0.
func (m Model) lossAfter(r *rand.Rand) time.Duration {
	if m.LossPerClusterHour == 0 {
		return never
	}
	return expDuration(r, float64(time.Hour)/m.LossPerClusterHour)
}

// Faults are per-call probabilities of an API failure. Each call that the
// service makes to the provider's API draws once when any is above zero:
// Transient fails it with a transient error and does nothing; Throttle
// fails it with berth.ErrThrottled (as EMR's ThrottlingException) and does
// nothing; LostReply lets the call take effect and then fails it with a
// transient error, as a reply lost on the network does, which is what
// idempotent creation and submission exist for. They add up to at most 1.
type Faults struct {
	Transient float64
	Throttle  float64
	LostReply float64
}

func (f Faults) validate() error {
	for _, p := range []float64{f.Transient, f.Throttle, f.LostReply} {
		if !probability(p) {
			return fmt.Errorf("sim faults %+v: each must be a probability, 0..1", f)
		}
	}
	if f.Transient+f.Throttle+f.LostReply > 1 {
		return fmt.Errorf("sim faults %+v: they add up to more than 1", f)
	}
	return nil
}

func (f Faults) any() bool { return f.Transient > 0 || f.Throttle > 0 || f.LostReply > 0 }

func probability(p float64) bool { return p >= 0 && p <= 1 }
