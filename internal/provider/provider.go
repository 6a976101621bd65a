// Package provider is the seam between Berth and the things that run
// clusters: local processes, AWS EMR, the simulator. Each provider
// implements Provider, may implement the optional capabilities below, and
// passes the conformance suite in providertest.
//
// One Provider value serves one pool: it knows the pool's primary and
// fallback specs, so the service only says which of the two to use.
//
// Two methods are idempotent by design, because they are what the service
// calls again after a crash between "ask the provider" and "record the
// answer": CreateCluster per ClusterID and SubmitStep per step Name. A
// provider finds what it had started (EMR: the cluster tag and the step
// name; local: the directory named for them) and returns it instead of
// starting it twice.
package provider

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/berthhq/berth/internal/berth"
)

// Provider creates, watches and destroys clusters and runs steps on them.
// All methods are required and must be safe for concurrent use.
type Provider interface {
	// CreateCluster starts a cluster for req and returns the provider's id
	// for it. If a cluster for req.ClusterID was already started and is not
	// gone, it returns that one's id and starts nothing.
	CreateCluster(ctx context.Context, req CreateRequest) (string, error)
	// DescribeCluster reports a cluster's state. A cluster the provider no
	// longer knows is reported lost, not as an error.
	DescribeCluster(ctx context.Context, id string) (Cluster, error)
	// TerminateCluster ends a cluster and every step on it. Terminating a
	// cluster that is already gone is not an error.
	TerminateCluster(ctx context.Context, id string) error
	// SubmitStep starts a step on a ready cluster and returns the provider's
	// id for it. If a step named req.Name exists on the cluster it returns
	// that one's id and starts nothing.
	SubmitStep(ctx context.Context, clusterID string, req StepRequest) (string, error)
	// ListSteps reports the steps of a cluster in one call, so that the
	// service polls once per cluster, not once per step: every step that
	// has not ended, and those that ended at least within the last hour
	// (a provider may drop steps that ended long before, so that a report
	// does not grow with the cluster's history).
	ListSteps(ctx context.Context, clusterID string) ([]Step, error)
	// CancelStep stops a step. Cancelling a step that has ended is not an
	// error.
	CancelStep(ctx context.Context, clusterID, stepID string) error
}

// Killer is the optional fault-injection capability: the cluster dies as if
// its spot capacity were reclaimed, and DescribeCluster then reports it lost
// with Class ClassCapacity.
type Killer interface {
	KillCluster(ctx context.Context, id string) error
}

// Finder is the optional adoption capability: find the cluster started for
// a Berth cluster id, without starting one. The service uses it to clean up
// a cluster whose creation it gave up on, which may or may not exist.
// Without it, the service assumes such a cluster was never created.
type Finder interface {
	// FindCluster returns the provider's id of the live cluster tagged with
	// clusterID, and false when there is none.
	FindCluster(ctx context.Context, clusterID string) (id string, found bool, err error)
}

// Lister is the optional capability to list the live clusters this
// installation started for the pool, whatever Berth recorded of them. The
// service compares the list with what it knows and reports the rest as
// strays (a creation given up on that went through after all, a cluster
// another process of this installation started): they cost money while
// no job runs on them.
type Lister interface {
	ListClusters(ctx context.Context) ([]Listed, error)
}

// Listed is one cluster a Lister found.
type Listed struct {
	// ID is the provider's id, ClusterID Berth's (from the cluster's tags).
	ID, ClusterID string
	// Since is when the provider says the cluster was created.
	Since time.Time
}

// StepChecker is the optional capability to say up front whether the
// provider can run a step at all (the local provider runs argv, not jars),
// so that a job it never could run is refused at submission instead of
// failing on a cluster.
type StepChecker interface {
	// CheckStep returns nil, or an error of kind berth.ErrInvalid whose
	// public message (berth.Public) tells the submitter why.
	CheckStep(step berth.Step) error
}

// LogReader is the optional capability to serve a step's output.
type LogReader interface {
	StepLogs(ctx context.Context, clusterID, stepID string) (berth.Logs, error)
}

// Poller is the optional capability to say how often the service should
// poll a cluster of this provider. The service asks again after every
// poll, so the interval may change (EMR slows down as the fleet grows).
// Providers without it are polled every DefaultPollInterval.
type Poller interface {
	PollInterval() time.Duration
}

// Attributor is the optional capability of a provider whose step failures
// can be reported before the loss of their cluster: EMR fails a step, and
// DescribeCluster says the cluster terminated with errors a while later.
// The service holds such a failure for the grace (plus two polls) before
// it charges it to the job, and a loss reported meanwhile takes the blame.
// Providers without it mark a cluster dead before they kill its steps, so
// a failure caused by the loss comes in the same poll as the loss.
type Attributor interface {
	AttributionGrace() time.Duration
}

// StepTracker is the optional capability of a provider that lists steps
// cheaply by asking only about the steps it knows of (EMR: by state and by
// id, never the cluster's whole history). After a restart the service tells
// it the steps under way of its running attempts on a cluster, before the
// first poll, so that those that ended while Berth was down are reported
// too: by id, or by name for a step whose id Berth never recorded (a
// crash right after the step was submitted).
type StepTracker interface {
	TrackSteps(clusterID string, steps []TrackedStep)
}

// Forgetter is the optional capability of a provider that lists ended
// steps for a while (ListSteps): the service tells it the steps whose end
// it has committed, and it lists them no more, so that a poll costs the
// steps under way and not the cluster's recent history. The service
// never asks about those steps again (a restarted one neither: their ends
// are in its store), so a provider may forget them for good, as the local
// one does; it must be cheap and must not block: the loop calls it after
// each commit.
type Forgetter interface {
	ForgetSteps(clusterID string, stepIDs []string)
}

// TrackedStep is a step a StepTracker is told to watch.
type TrackedStep struct {
	// ID is the provider's id; empty when Berth never learnt it.
	ID string
	// Name is the step's name (berth.StepName), Since when its attempt
	// began: the step, if it was submitted, is not older.
	Name  string
	Since time.Time
}

// Notifier is the optional capability to tell the service at once that
// something about a cluster changed (a step ended), so that it polls the
// cluster now instead of at the next interval. A notice carries no news of
// its own: what changed is what the poll it prompts reads. Polling stays
// the safety net, because a notice may be lost (a restart, a step the
// provider did not start itself) and is never the only way to learn.
type Notifier interface {
	// Notify makes the provider call fn with a cluster's provider id soon
	// after something about that cluster changed, once the change shows
	// in DescribeCluster and ListSteps. fn is called from the provider's
	// own goroutines, possibly at once from several, and must return
	// quickly. A later call replaces fn; nil stops the notices.
	Notify(fn func(providerClusterID string))
}

// DefaultPollInterval is used for providers that do not implement Poller.
const DefaultPollInterval = 10 * time.Second

// CreateRequest asks for one cluster.
type CreateRequest struct {
	// ClusterID is Berth's id for the cluster; the provider tags the
	// cluster with it.
	ClusterID string
	Pool      string
	Slots     int
	// Fallback asks for the pool's fallback spec instead of its primary.
	Fallback bool
}

// Cluster is what the provider says about one cluster.
type Cluster struct {
	ID string
	// State is one of starting, ready, terminating, terminated or lost.
	State berth.ClusterState
	// Reason explains terminated and lost.
	Reason string
	// Class says what a loss means for policy: ClassCapacity for a spot
	// reclaim or a shortage (counts towards the pool's fallback),
	// ClassPermanent for a spec that can never work (a bootstrap that
	// always fails: blocks the pool), empty or ClassTransient otherwise.
	Class Class
}

// StepRequest asks for one step.
type StepRequest struct {
	// Name identifies the attempt's step (berth.StepName).
	Name string
	Step berth.Step
	// Since is when Berth started the attempt the step belongs to: a step
	// of that name, if one was submitted before a crash, is not older. A
	// provider that must search for it (EMR) searches no further back.
	Since time.Time
	// ExecutionRoleArn is the job's runtime role (EMR), empty for none.
	// Only EMR pools use it; the local and sim providers ignore it.
	ExecutionRoleArn string
}

// Step is what the provider says about one step.
type Step struct {
	ID    string
	Name  string
	State berth.StepState
	// ExitCode is set when the provider knows it.
	ExitCode  *int
	Message   string
	StartedAt time.Time
	EndedAt   time.Time
	// Lost marks a failed step that the provider knows failed because the
	// node it ran on was lost (EMR: a spot node reclaimed) while the
	// cluster lives on: the infrastructure's failure, not the job's.
	Lost bool
}

// ErrNotReady is returned by SubmitStep on a cluster that is not ready.
var ErrNotReady = errors.New("cluster not ready")

// ErrUnknownCluster is returned for an id the provider never issued, where
// the method cannot answer "lost" instead.
var ErrUnknownCluster = fmt.Errorf("%w: unknown cluster", berth.ErrNotFound)

// Class is what a provider failure means for Berth's policy. Creation
// errors and lost clusters carry one, so that policy can tell a hiccup from
// a shortage from a spec that can never work.
type Class string

const (
	// ClassTransient: try again; nothing is wrong with the request.
	ClassTransient Class = "transient"
	// ClassCapacity: the provider lacks capacity (spot reclaimed,
	// insufficient capacity): back off, and count towards the pool's
	// switch to its fallback spec.
	ClassCapacity Class = "capacity"
	// ClassPermanent: the request can never work as it is (a bad
	// bootstrap script, a validation error, access denied). The pool is
	// blocked: starting cluster after cluster for it would only spend.
	ClassPermanent Class = "permanent"
)

// Error is a provider failure with its class. Providers return it (or wrap
// it) for failures they can classify; an error without one is transient.
type Error struct {
	Class Class
	// Code is the provider's own name for the failure
	// ("ValidationException", "BootstrapFailure").
	Code    string
	Message string
	// Err is the underlying error, if any.
	Err error
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" && e.Err != nil {
		msg = e.Err.Error()
	}
	if e.Code != "" {
		return fmt.Sprintf("%s (%s): %s", e.Code, e.Class, msg)
	}
	return fmt.Sprintf("%s: %s", e.Class, msg)
}

func (e *Error) Unwrap() error { return e.Err }

// ClassOf returns the class of err: that of the first *Error in its chain,
// and ClassTransient for any other error.
func ClassOf(err error) Class {
	var pe *Error
	if errors.As(err, &pe) && pe.Class != "" {
		return pe.Class
	}
	return ClassTransient
}
