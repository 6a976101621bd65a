package api_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/berthhq/berth/internal/api"
	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/provider/local"
	"github.com/berthhq/berth/internal/provider/sim"
	"github.com/berthhq/berth/internal/service"
	"github.com/berthhq/berth/internal/store"
	"github.com/berthhq/berth/internal/store/sqlite"
)

// The contract tests run the same requests against the API over the
// stand-in (apitest.Service, driven by hand) and over the real service, so
// that the stand-in cannot drift from what clients really get. Tests that
// need the stand-in's hooks (a job moved to a state, logs set, a pool
// blocked, a clock advanced) stay stand-in only.

// backends runs f once over the stand-in and once over the real service.
func backends(t *testing.T, f func(t *testing.T, h *harness), opts ...func(*api.Options)) {
	t.Run("stand-in", func(t *testing.T) { f(t, newHarness(t, opts...)) })
	t.Run("real", func(t *testing.T) { f(t, newRealHarness(t, opts...)) })
}

// newRealHarness serves the API over the real service: service.New over a
// SQLite store in the test's directory, with the pool small on the local
// provider and spark on the sim provider, as internal/server assembles
// it. The pools may start no cluster (max_clusters 0), so jobs stay queued
// and nothing runs but the loop.
func newRealHarness(t testing.TB, opts ...func(*api.Options)) *harness {
	t.Helper()
	ctx := context.Background()
	logs := newLogs(t)
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "berth.db"), log)
	if err != nil {
		t.Fatal(err)
	}
	prov, err := local.New(local.Options{Dir: filepath.Join(dir, "small"), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	// spark is on the sim provider, which takes jar steps as the stand-in's
	// EMR pool does; the local provider refuses them.
	simProv, err := sim.New(sim.Options{PricePerHour: 1, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	pools := []service.Pool{
		{Pool: berth.Pool{Name: "small", Provider: "local", Slots: 2, MaxClusters: 0, PricePerHour: 1}, Provider: prov},
		{Pool: berth.Pool{Name: "spark", Provider: "sim", Slots: 2, MaxClusters: 0, PricePerHour: 1}, Provider: simProv},
	}
	svc, err := service.New(service.Options{Store: st, Pools: pools, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		svc.Stop()
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	})
	o := api.Options{Service: svc, Log: log}
	for _, f := range opts {
		f(&o)
	}
	srv := httptest.NewServer(api.New(o))
	t.Cleanup(srv.Close)
	return &harness{t: t, service: svc, st: st, srv: srv, log: logs}
}

// state sums up what the service holds, so that a test can tell that a
// request changed nothing. Over the real service it is the jobs (with
// their state and cancel request) and the number of clusters; the events
// the loop writes on its own are left out.
func (h *harness) state() string {
	h.t.Helper()
	return h.stateIn(h.t)
}

// stateIn is state for a test other than the harness's own (a fuzz
// target's).
func (h *harness) stateIn(t testing.TB) string {
	t.Helper()
	if h.svc != nil {
		return strconv.Itoa(h.svc.Mutations())
	}
	ctx := context.Background()
	jobs, _, err := h.st.ListJobs(ctx, store.JobFilter{Limit: store.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := h.st.ListClusters(ctx, store.ClusterFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, j := range jobs {
		fmt.Fprintf(&b, "%s %s %v; ", j.ID, j.State, j.CancelRequested)
	}
	fmt.Fprintf(&b, "%d clusters", len(cs))
	return b.String()
}

// leak says what in an error message belongs in a log, not in an answer:
// the store's name, an operation chain, a sentinel's text wrapped with
// "%w: ". It returns "" for a clean message.
func leak(msg string) string {
	if strings.Contains(strings.ToLower(msg), "sqlite") {
		return "the store's name"
	}
	for _, k := range []error{berth.ErrInvalid, berth.ErrUnprocessable, berth.ErrNotFound, berth.ErrConflict,
		berth.ErrUnsupported, berth.ErrUnavailable, berth.ErrThrottled} {
		if strings.Contains(msg, k.Error()+":") {
			return "a wrapped sentinel (" + k.Error() + ":)"
		}
	}
	for _, op := range []string{"submit:", "get job ", "create job ", "cancel job ", "request cancel", "list jobs:", "get cluster "} {
		if strings.Contains(msg, op) {
			return "an operation (" + op + ")"
		}
	}
	return ""
}
