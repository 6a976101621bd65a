package service

import (
	"context"

	"github.com/berthhq/berth/internal/berth"
)

// Unblock lifts the block a permanent provider failure put on a pool, so
// that it starts clusters again, and returns the pool's status once the
// pass that follows has committed the change. A pool that is not blocked
// is left as it is: unblocking is idempotent.
func (s *Service) Unblock(ctx context.Context, name string) (berth.PoolStatus, error) {
	if _, ok := s.pools[name]; !ok {
		return berth.PoolStatus{}, berth.Errorf(berth.ErrNotFound, "pool %q not found", name)
	}
	if err := s.onLoop(ctx, unblock(name)); err != nil {
		return berth.PoolStatus{}, err
	}
	return s.Pool(ctx, name)
}

// RequestUnblock is Unblock without the wait, for callers that cannot
// wait (see RequestDrain).
func (s *Service) RequestUnblock(name string) {
	if _, ok := s.pools[name]; ok {
		s.post(command{fn: unblock(name)})
	}
}

func unblock(name string) func(l *loop) error {
	return func(l *loop) error { return l.st.Unblock(name) }
}

// onLoop runs fn on the loop, within its next pass, and returns once that
// pass has committed (or fn failed, or the loop did not answer in time).
func (s *Service) onLoop(ctx context.Context, fn func(l *loop) error) error {
	reply := make(chan error, 1)
	s.post(command{fn: fn, reply: reply})
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-s.clock.After(commandWait):
		return berth.Errorf(berth.ErrUnavailable, "the loop is busy; try again")
	}
}
