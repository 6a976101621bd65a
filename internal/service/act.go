package service

import (
	"context"
	"time"

	"github.com/berthhq/berth/internal/lifecycle"
	"github.com/berthhq/berth/internal/provider"
)

const (
	// maxCalls bounds the provider calls in flight at once.
	maxCalls = 32
	// callTimeout bounds one provider call.
	callTimeout = 2 * time.Minute
)

// act starts the committed pass's provider calls on the executor; results
// come back to the loop as inputs. Calls in flight, or backing off after
// a failure, are not made again. It returns how many it started.
func (l *loop) act(ctx context.Context, calls []lifecycle.Call) int {
	n := 0
	for _, c := range calls {
		cl := l.st.Cluster(c.ClusterID)
		if cl == nil || !l.st.Due(c) {
			continue
		}
		prov := l.s.pools[cl.C.Pool].prov
		req := provider.CreateRequest{ClusterID: cl.C.ID, Pool: cl.C.Pool, Slots: cl.C.Slots, Fallback: cl.C.Fallback}
		pid := cl.C.ProviderID
		var w *watcher
		if c.Kind == lifecycle.CallSubmit {
			w = l.watchers[cl.C.ID]
		}
		if !l.s.spawn(func() {
			r := call(ctx, prov, pid, req, c)
			l.s.post(r)
			if w != nil && r.Err == nil {
				// A quick step may have ended already. The watcher looks
				// now, while the next pass records the submission, so
				// that its end is in the pass after, not in one after
				// that commit: a burn-down of short steps then takes
				// two passes a job, not three. Posted first, the result
				// is applied before anything this look reports.
				w.poke()
			}
		}) {
			// Stopping: the state on disk asks for this call again after
			// the restart, and the provider makes it idempotent.
			continue
		}
		l.st.Started(c)
		n++
	}
	return n
}

// call makes one provider call.
func call(ctx context.Context, prov provider.Provider, pid string, req provider.CreateRequest, c lifecycle.Call) lifecycle.Result {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	r := lifecycle.Result{Call: c}
	switch c.Kind {
	case lifecycle.CallCreate:
		r.ID, r.Err = prov.CreateCluster(ctx, req)
	case lifecycle.CallSubmit:
		r.ID, r.Err = prov.SubmitStep(ctx, pid, provider.StepRequest{Name: c.Name, Step: c.Spec, Since: c.Since, ExecutionRoleArn: c.ExecutionRoleArn})
	case lifecycle.CallCancel:
		r.Err = prov.CancelStep(ctx, pid, c.StepID)
	case lifecycle.CallTerminate:
		r.Err = prov.TerminateCluster(ctx, pid)
	case lifecycle.CallFind:
		var found bool
		if r.ID, found, r.Err = prov.(provider.Finder).FindCluster(ctx, req.ClusterID); r.Err == nil && !found {
			r.ID = ""
		}
	}
	return r
}
