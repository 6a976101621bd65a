package sqlite_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthhq/berth/internal/api"
	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/provider/local"
	"github.com/berthhq/berth/internal/service"
	"github.com/berthhq/berth/internal/store/sqlite"
)

// TestDiskFullOverHTTP: through the API and the service, a submission the
// store cannot write is 503 unavailable saying why, not 500 internal; once
// the disk has room the same request is stored. The loop is not started:
// a submission is written by the API's request alone.
func TestDiskFullOverHTTP(t *testing.T) {
	ctx := t.Context()
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "berth.db"), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	prov, err := local.New(local.Options{Dir: t.TempDir(), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := service.New(service.Options{
		Store: st, Log: log,
		Pools: []service.Pool{{Pool: berth.Pool{Name: "p", Provider: "local", Slots: 1, MaxClusters: 1}, Provider: prov}},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Options{Service: svc, Log: log}))
	t.Cleanup(srv.Close)

	// Half the largest argument a step may have: more than the free room
	// of the pages the database has.
	arg := strings.Repeat("x", berth.MaxArgBytes/2)
	submit := func() (int, string, string) {
		t.Helper()
		body := `{"pool": "p", "idempotency_key": "k-1", "steps": [{"args": ["echo", "` + arg + `"]}]}`
		resp, err := srv.Client().Post(srv.URL+"/v1/jobs", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		var e struct {
			Error struct{ Code, Message string }
		}
		_ = json.Unmarshal(b, &e)
		return resp.StatusCode, e.Error.Code, e.Error.Message
	}

	unlimited, err := sqlite.LimitPages(ctx, st, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sqlite.LimitPages(ctx, st, 1); err != nil {
		t.Fatal(err)
	}
	status, code, msg := submit()
	if status != http.StatusServiceUnavailable || code != "unavailable" || !strings.Contains(msg, "the store cannot write: disk full") {
		t.Errorf("POST /v1/jobs on a full disk: %d %s %q, want 503 unavailable saying the store cannot write: disk full", status, code, msg)
	}

	if _, err := sqlite.LimitPages(ctx, st, unlimited); err != nil {
		t.Fatal(err)
	}
	if status, code, msg := submit(); status != http.StatusCreated {
		t.Errorf("POST /v1/jobs once the disk has room: %d %s %q, want 201", status, code, msg)
	}
}
