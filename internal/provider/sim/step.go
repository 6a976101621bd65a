package sim

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/provider"
)

// The step programs the model knows: args ["sleep", "90s"] and
// ["fail", "90s"].
const (
	argSleep = "sleep"
	argFail  = "fail"
)

// failExitCode is the exit code of a fail step.
const failExitCode = 1

// step is everything the provider knows of one step. Like a cluster's,
// its state follows from these times, its cluster's and the clock.
type step struct {
	id, name string
	args     []string
	start    time.Time
	// done is when the step ends by itself, and ok whether it succeeds.
	done time.Time
	ok   bool
	// cancelAt is when CancelStep stopped it; zero when it did not.
	cancelAt time.Time
	// forgotten is set once the service recorded its end: ListSteps
	// drops it.
	forgotten bool
}

// outcome is how a step ends, which may lie in the future.
type outcome struct {
	at    time.Time
	state berth.StepState
	code  *int
	msg   string
}

// outcome is the first of the step's own end, its cancellation and its
// cluster's stop.
func (s *step) outcome(c *cluster) outcome {
	o := outcome{at: s.done, state: berth.StepSucceeded, code: exitCode(0)}
	if !s.ok {
		o.state, o.code, o.msg = berth.StepFailed, exitCode(failExitCode), fmt.Sprintf("exited with code %d", failExitCode)
	}
	if !s.cancelAt.IsZero() && s.cancelAt.Before(o.at) {
		o = outcome{at: s.cancelAt, state: berth.StepCancelled, msg: "cancelled"}
	}
	if stop, why := c.stopAt(); !stop.IsZero() && stop.Before(o.at) {
		o = outcome{at: stop, state: berth.StepFailed, msg: why}
	}
	return o
}

func exitCode(n int) *int { return &n }

// view is the step as ListSteps reports it at now.
func (s *step) view(c *cluster, now time.Time) provider.Step {
	v := provider.Step{ID: s.id, Name: s.name, State: berth.StepRunning, StartedAt: s.start}
	if o := s.outcome(c); !now.Before(o.at) {
		v.State, v.ExitCode, v.Message, v.EndedAt = o.state, o.code, o.msg, o.at
	}
	return v
}

func (s *step) ended(c *cluster, now time.Time) bool { return !now.Before(s.outcome(c).at) }

// CheckStep refuses a sleep or fail step without exactly one positive
// duration; the model runs every other step, jar steps included.
func (p *Provider) CheckStep(s berth.Step) error {
	if _, _, _, err := programmed(s); err != nil {
		return fmt.Errorf("%w: %v", berth.ErrInvalid, err)
	}
	return nil
}

// programmed reads a sleep or fail step's duration and outcome; ok is
// false for any other step. A jar step is never one: its args are its
// main class's.
func programmed(s berth.Step) (d time.Duration, succeeds, ok bool, err error) {
	args := s.Args
	if s.Jar != "" || len(args) == 0 || args[0] != argSleep && args[0] != argFail {
		return 0, false, false, nil
	}
	if len(args) != 2 {
		return 0, false, false, fmt.Errorf("a sim %s step takes one duration, such as [%q, \"90s\"], not %d arguments", args[0], args[0], len(args)-1)
	}
	d, perr := time.ParseDuration(args[1])
	if perr != nil || d <= 0 {
		return 0, false, false, fmt.Errorf("a sim %s step takes a positive duration such as \"90s\", not %q", args[0], args[1])
	}
	return d, args[0] == argSleep, true, nil
}

// SubmitStep starts a step on a ready cluster, or returns the step of
// that name on the cluster, whatever its state.
func (p *Provider) SubmitStep(ctx context.Context, clusterID string, req provider.StepRequest) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	const op = "submit step"
	p.calls[clusterID]++
	lost, err := p.fault(op)
	if err != nil {
		return "", err
	}
	id, err := p.submit(clusterID, req)
	return reply(lost, op, id, err)
}

func (p *Provider) submit(clusterID string, req provider.StepRequest) (string, error) {
	if req.Name == "" {
		return "", fmt.Errorf("sim: submit step to cluster %s: a step name is required: %w", clusterID, berth.ErrInvalid)
	}
	d, succeeds, known, err := programmed(req.Step)
	if err != nil {
		return "", fmt.Errorf("sim: submit step %q to cluster %s: %v: %w", req.Name, clusterID, err, berth.ErrInvalid)
	}
	c := p.byID[clusterID]
	if c == nil {
		return "", fmt.Errorf("sim: submit step %q: %w", req.Name, errUnknownCluster(clusterID))
	}
	if s := c.byName[req.Name]; s != nil {
		return s.id, nil
	}
	now := p.clock.Now()
	if st := c.state(now); st != berth.ClusterReady {
		return "", fmt.Errorf("sim: submit step %q: cluster %s is %s: %w", req.Name, clusterID, st, provider.ErrNotReady)
	}
	switch {
	case p.script != nil:
		d, succeeds = p.script(req.Name, req.Step)
		d = max(d, 0)
	case !known:
		d, succeeds = c.model.StepTime.draw(p.rng), true
	}
	p.nextStep++
	s := &step{
		id:    fmt.Sprintf("%s-s-%d", p.prefix, p.nextStep),
		name:  req.Name,
		args:  slices.Clone(req.Step.Args),
		start: now,
		done:  now.Add(d),
		ok:    succeeds,
	}
	c.steps = append(c.steps, s)
	c.byName[s.name] = s
	c.byStep[s.id] = s
	c.active = append(c.active, s)
	p.started[s.name]++
	p.stepsStarted++
	return s.id, nil
}

// ListSteps reports every step of the cluster, in submission order.
func (p *Provider) ListSteps(ctx context.Context, clusterID string) ([]provider.Step, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	const op = "list steps"
	p.calls[clusterID]++
	lost, err := p.fault(op)
	if err != nil {
		return nil, err
	}
	c := p.byID[clusterID]
	if c == nil {
		return nil, fmt.Errorf("sim: list steps: %w", errUnknownCluster(clusterID))
	}
	now := p.clock.Now()
	steps := make([]provider.Step, 0, len(c.steps))
	kept := c.steps[:0]
	for _, s := range c.steps {
		if s.forgotten {
			continue
		}
		v := s.view(c, now)
		if !v.EndedAt.IsZero() && now.Sub(v.EndedAt) > listWindow {
			continue
		}
		kept = append(kept, s)
		steps = append(steps, v)
	}
	clear(c.steps[len(kept):])
	c.steps = kept
	return reply(lost, op, steps, nil)
}

// ForgetSteps lists the given steps no more once they have ended (see
// provider.Forgetter); one that has not ended yet stays listed. It is no
// provider call: it counts as none, and no fault touches it.
func (p *Provider) ForgetSteps(clusterID string, stepIDs []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.byID[clusterID]
	if c == nil {
		return
	}
	now := p.clock.Now()
	for _, id := range stepIDs {
		if s := c.byStep[id]; s != nil && s.ended(c, now) {
			s.forgotten = true
		}
	}
}

// StepByName reports the step of that name on a cluster as ListSteps
// would, forgotten or not: for checks of what the provider ran.
func (p *Provider) StepByName(clusterID, name string) (provider.Step, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.byID[clusterID]
	if c == nil || c.byName[name] == nil {
		return provider.Step{}, false
	}
	return c.byName[name].view(c, p.clock.Now()), true
}

// listWindow is how long ListSteps goes on reporting a step after it
// ended, as the provider contract allows: a long-lived cluster's report
// does not grow with its history.
const listWindow = time.Hour

// CancelStep stops a running step now. Cancelling a step that has ended
// changes nothing.
func (p *Provider) CancelStep(ctx context.Context, clusterID, stepID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	const op = "cancel step"
	p.calls[clusterID]++
	lost, err := p.fault(op)
	if err != nil {
		return err
	}
	c, s, err := p.findStep(op, clusterID, stepID)
	if err != nil {
		return err
	}
	if now := p.clock.Now(); !s.ended(c, now) {
		s.cancelAt = now
	}
	_, err = reply(lost, op, struct{}{}, nil)
	return err
}

func (p *Provider) findStep(op, clusterID, stepID string) (*cluster, *step, error) {
	c := p.byID[clusterID]
	if c == nil {
		return nil, nil, fmt.Errorf("sim: %s %s: %w", op, stepID, errUnknownCluster(clusterID))
	}
	s := c.byStep[stepID]
	if s == nil {
		return nil, nil, fmt.Errorf("sim: %s %s on cluster %s: %w", op, stepID, clusterID, berth.ErrNotFound)
	}
	return c, s, nil
}

// StepLogs returns a few lines of output made up for the step: what it
// ran and, once it ended, how.
func (p *Provider) StepLogs(ctx context.Context, clusterID, stepID string) (berth.Logs, error) {
	if err := ctx.Err(); err != nil {
		return berth.Logs{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	const op = "step logs"
	p.calls[clusterID]++
	lost, err := p.fault(op)
	if err != nil {
		return berth.Logs{}, err
	}
	c, s, err := p.findStep(op, clusterID, stepID)
	if err != nil {
		return berth.Logs{}, err
	}
	var out, errOut strings.Builder
	fmt.Fprintf(&out, "sim step %s (%s) on cluster %s\n", s.name, s.id, c.id)
	fmt.Fprintf(&out, "args: %q\n", s.args)
	v := s.view(c, p.clock.Now())
	if v.State.Terminal() {
		fmt.Fprintf(&out, "%s after %s\n", v.State, v.EndedAt.Sub(v.StartedAt))
		if v.Message != "" {
			fmt.Fprintf(&errOut, "%s\n", v.Message)
		}
	}
	logs := berth.Logs{Stdout: out.String(), Stderr: errOut.String(), Location: "sim://" + c.id + "/" + s.id}
	return reply(lost, op, logs, nil)
}
