package service

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/provider/sim"
	"github.com/berthhq/berth/internal/store"
	"github.com/berthhq/berth/internal/store/sqlite"
	"github.com/berthhq/berth/internal/wait"
)

// Unblock waits for the loop (it answers after the commit), so it runs on
// the wall clock.
func TestUnblock(t *testing.T) {
	h := newWallClock(t, simPool(), sim.Options{})
	ctx := context.Background()

	// Unblocking a pool that is not blocked changes nothing.
	if ps, err := h.svc.Unblock(ctx, "p"); err != nil || ps.Name != "p" || ps.Blocked {
		t.Fatalf("Unblock of an unblocked pool = %+v, %v", ps, err)
	}
	_, err := h.svc.Unblock(ctx, "nope")
	if !errors.Is(err, berth.ErrNotFound) || berth.Public(err) != `pool "nope" not found` {
		t.Fatalf("Unblock of an unknown pool = %v (public %q), want not found", err, berth.Public(err))
	}

	// Block the pool in the store, as a permanent failure would have
	// before a restart, under the configuration it still has.
	h.stop()
	st, err := sqlite.Open(context.Background(), h.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	blockInStore(t, st, fingerprint(h.pool))
	h.start()
	wait.For(t, deadline, "the restored pool shown blocked", func() bool {
		ps, _ := h.svc.Pool(ctx, "p")
		return ps.Blocked && ps.BlockedReason == "bootstrap failed"
	})

	ps, err := h.svc.Unblock(ctx, "p")
	if err != nil || ps.Blocked || ps.BlockedReason != "" || !ps.BlockedAt.IsZero() {
		t.Fatalf("Unblock = %+v, %v; want the pool unblocked", ps, err)
	}
	// Unblock answers after the commit: the store has it already.
	loaded, err := h.st.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range loaded.Pools {
		if p.Pool == "p" && (p.Blocked() || p.BlockedReason != "" || p.BlockedSpec != "") {
			t.Errorf("the store still has the pool blocked: %+v", p)
		}
	}
	events, err := h.st.ListEvents(ctx, store.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var unblocked []string
	for _, e := range events {
		if e.Kind == "pool_unblocked" {
			unblocked = append(unblocked, e.Message)
		}
	}
	if len(unblocked) != 1 || !strings.Contains(unblocked[0], "pool p unblocked by request") || !strings.Contains(unblocked[0], "bootstrap failed") {
		t.Errorf("pool_unblocked events %q, want one that names the pool and the reason it was blocked", unblocked)
	}

	// Again: idempotent, and no second event.
	if _, err := h.svc.Unblock(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	events, _ = h.st.ListEvents(ctx, store.EventFilter{})
	n := 0
	for _, e := range events {
		if e.Kind == "pool_unblocked" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d pool_unblocked events after a second Unblock, want 1", n)
	}
}

// blockInStore blocks pool p in st under spec, as a permanent failure
// would have before a restart, and closes st. No service may run on it.
func blockInStore(t *testing.T, st store.Store, spec string) {
	t.Helper()
	blockedAt := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	if err := st.Commit(context.Background(), store.Batch{Pools: []berth.PoolState{{Pool: "p",
		BlockedAt: blockedAt, BlockedReason: "bootstrap failed", BlockedSpec: spec}}}); err != nil {
		t.Fatal(err)
	}
	st.Close()
}

// A pool blocked under another configuration is unblocked when the
// service starts with the new one.
func TestConfigChangeUnblocks(t *testing.T) {
	h := newVirtual(t, simPool(), booting)
	h.crash()
	blockInStore(t, h.db.Open(), "the configuration that failed")
	h.start()
	h.until("the pool unblocked in the store", time.Hour, func() bool {
		st, err := h.st.Load(context.Background())
		if err != nil {
			return false
		}
		for _, p := range st.Pools {
			if p.Pool == "p" {
				return !p.Blocked()
			}
		}
		return false
	})
	if ps, _ := h.svc.Pool(context.Background(), "p"); ps.Blocked {
		t.Fatalf("pool %+v still blocked", ps)
	}
	events, _ := h.st.ListEvents(context.Background(), store.EventFilter{})
	found := false
	for _, e := range events {
		found = found || e.Kind == "pool_unblocked" && strings.Contains(e.Message, "configuration changed")
	}
	if !found {
		t.Fatal("no pool_unblocked event saying the configuration changed")
	}
}
