package service

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/provider/local"
	"github.com/berthhq/berth/internal/store"
	"github.com/berthhq/berth/internal/store/sqlite"
	"github.com/berthhq/berth/internal/wait"
)

// A provider that notifies (provider.Notifier) has a step's end seen when
// it happens, not at the next poll: on a local pool polled once an hour, a
// job succeeds as soon as its step ends. The step waits for the test, so
// that the polls the job's placement brings (the first poll, the poke after
// the submission) find it running and only a notice can tell its end.
func TestNotifiedStepEnd(t *testing.T) {
	t.Parallel()
	prov, err := local.New(local.Options{Dir: t.TempDir(), PollInterval: time.Hour, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "berth.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	pool := berth.Pool{Name: "p", Provider: "local", Slots: 1, MinClusters: 1, MaxClusters: 1, IdleTimeout: time.Hour, PricePerHour: 1}
	svc, err := New(Options{Store: st, Pools: []Pool{{Pool: pool, Provider: prov}}, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The step's process must not outlive a failed test.
		cs, err := svc.Clusters(context.Background(), store.ClusterFilter{})
		if err != nil {
			t.Error(err)
		}
		svc.Stop()
		for _, c := range cs {
			if err := prov.TerminateCluster(context.Background(), c.ProviderID); err != nil {
				t.Error(err)
			}
		}
		st.Close()
	})

	release := filepath.Join(t.TempDir(), "release")
	j := submitTo(t, svc, pool.Name, berth.JobSpec{Steps: []berth.Step{{Name: "wait", Args: []string{"sh", "-c", `while [ ! -e "$1" ]; do sleep 0.01; done`, "sh", release}}}})
	wait.For(t, deadline, "the step seen running", func() bool { return jobOf(t, svc, j.ID).Steps[0].State == berth.StepRunning })
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	wait.For(t, deadline, "the job succeeded", func() bool { return jobOf(t, svc, j.ID).State == berth.JobSucceeded })
}
