package emulator

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// The errors of the faults that name a cluster.
var (
	ErrNoCluster     = errors.New("no such cluster")
	ErrClusterEnding = errors.New("the cluster is already ending")
)

// The faults a test scripts. Each takes effect at once; those that change
// clusters do so on the emulator's clock.

// SpotLoss reclaims a cluster's Spot capacity, as EC2 does: its running
// steps fail at once (their processes killed), no pending step starts,
// and LossLag later the cluster is TERMINATING and then
// TERMINATED_WITH_ERRORS with INSTANCE_FAILURE, its pending steps
// CANCELLED. The steps fail before the cluster says why, as on EMR: a
// caller must not blame the steps.
func (e *Emulator) SpotLoss(clusterID string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, err := e.liveCluster(clusterID)
	if err != nil {
		return err
	}
	for _, g := range c.groups {
		if g.cfg.Market == "SPOT" {
			g.running = 0
		}
	}
	for _, f := range c.fleets {
		f.spot = 0
	}
	e.loseNode(c, fmt.Sprintf("The master node was terminated: EC2 reclaimed the Spot capacity of the cluster (instance %s was interrupted)", c.master))
	return nil
}

// InstanceFailure loses a core node of a cluster: its running steps fail
// at once (their processes killed). Unless survive, the cluster goes the
// way of SpotLoss LossLag later; with survive it goes on, and its pending
// steps start.
func (e *Emulator) InstanceFailure(clusterID string, survive bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, err := e.liveCluster(clusterID)
	if err != nil {
		return err
	}
	for _, g := range c.groups {
		if g.cfg.InstanceRole == "CORE" && g.running > 0 {
			g.running--
		}
	}
	if survive {
		e.failRunning(c)
		e.settle(c)
		return nil
	}
	e.loseNode(c, fmt.Sprintf("An instance of the cluster's core nodes (%s) failed and the cluster could not recover", e.newID("i-", 17, hexDigits)))
	return nil
}

func (e *Emulator) liveCluster(id string) (*cluster, error) {
	c := e.clusters[id]
	switch {
	case c == nil:
		return nil, fmt.Errorf("cluster %s: %w", id, ErrNoCluster)
	case !c.alive() || c.doomed:
		return nil, fmt.Errorf("cluster %s (%s): %w", id, c.state, ErrClusterEnding)
	}
	return c, nil
}

// failRunning fails the running steps of c as a lost node does.
func (e *Emulator) failRunning(c *cluster) {
	for _, s := range c.steps {
		if s.state == StepRunning || s.state == StepCancelPending {
			e.endRunning(c, s, StepFailed, &[2]string{"The step failed because a node of the cluster was lost.", "Container released on a *lost* node"})
		}
	}
}

// loseNode fails the running steps now and ends the cluster for msg
// LossLag later.
func (e *Emulator) loseNode(c *cluster, msg string) {
	e.failRunning(c)
	c.doomed = true
	// A cluster still starting makes no more progress.
	if !c.isReady() && c.timer != nil {
		c.gen++
		c.timer.Stop()
		c.timer = nil
	}
	e.settle(c)
	c.lossGen++
	g := c.lossGen
	c.lossTimer = e.afterFunc(e.opts.LossLag, func() {
		if c.lossGen == g && c.alive() {
			c.lossTimer = nil
			e.terminate(c, ReasonInstanceFailure, msg, StepCancelled)
		}
	})
	e.log.Info("node lost", "cluster", c.id, "message", msg)
}

// FailBootstraps makes the next n clusters fail their bootstrap: STARTING,
// BOOTSTRAPPING, then TERMINATED_WITH_ERRORS with BOOTSTRAP_FAILURE.
func (e *Emulator) FailBootstraps(n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.failBootstraps = max(n, 0)
}

// FailCapacity makes the next n clusters find no EC2 capacity: STARTING,
// then TERMINATED_WITH_ERRORS, INSTANCE_FLEET_TIMEOUT for fleets and
// INTERNAL_ERROR "EC2 is out of capacity for <type> ..." for groups, as
// EMR reports them.
func (e *Emulator) FailCapacity(n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.failCapacity = max(n, 0)
}

type callFault struct {
	err *apiError
	n   int
}

// FailCalls makes the next n calls of op fail with code, message and
// HTTP status (0 is 400) without taking effect. Faults queue up: a
// second FailCalls applies after the first's n calls. n ≤ 0 clears the
// faults of op.
func (e *Emulator) FailCalls(op, code, message string, status, n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if n <= 0 {
		delete(e.failCalls, op)
		return
	}
	if status == 0 {
		status = http.StatusBadRequest
	}
	e.failCalls[op] = append(e.failCalls[op], callFault{&apiError{status, code, message}, n})
}

func (e *Emulator) nextCallFault(op string) *apiError {
	fs := e.failCalls[op]
	if len(fs) == 0 {
		return nil
	}
	err := fs[0].err
	if fs[0].n--; fs[0].n == 0 {
		e.failCalls[op] = fs[1:]
	}
	return err
}

// DropReplies makes the next n successful calls of op lose their reply:
// the call takes effect, and the caller is answered 500 InternalFailure,
// as when a reply is lost on the way.
func (e *Emulator) DropReplies(op string, n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.dropReplies[op] = max(n, 0)
}

// SetLatency holds back every answer of op (after it took effect) for d
// on the emulator's clock; op "*" is every operation without a latency
// of its own, and d 0 removes the latency.
func (e *Emulator) SetLatency(op string, d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if d <= 0 {
		delete(e.latency, op)
		return
	}
	e.latency[op] = d
}

func (e *Emulator) latencyOf(op string) time.Duration {
	if d, ok := e.latency[op]; ok {
		return d
	}
	return e.latency["*"]
}

// SetThrottle turns EMR's token buckets on or off; turned on, they start
// full.
func (e *Emulator) SetThrottle(on bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if on && !e.throttle {
		e.buckets = map[string]*bucket{}
		e.account = newBucket(e.scaled(accountRate), e.clk.Now())
	}
	e.throttle = on
}
