package service

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/provider"
	"github.com/berthhq/berth/internal/provider/sim"
)

// listing is a sim provider that lists its live clusters, as EMR lists
// those named for the installation.
type listing struct{ *sim.Provider }

func (l listing) ListClusters(ctx context.Context) ([]provider.Listed, error) {
	var out []provider.Listed
	for _, c := range l.Snapshot().Clusters {
		if !c.State.Terminal() && c.State != berth.ClusterTerminating {
			out = append(out, provider.Listed{ID: c.ID, ClusterID: c.ClusterID, Since: c.CreatedAt})
		}
	}
	return out, nil
}

// A cluster started for the installation that Berth has no record of (here
// started behind its back) is reported on the pool; Berth's own are not.
// With TerminateStrays it is also terminated, and then no longer reported.
func TestStrays(t *testing.T) {
	for _, terminate := range []bool{false, true} {
		t.Run(map[bool]string{false: "report", true: "terminate"}[terminate], func(t *testing.T) {
			h := newVirtual(t, simPool(), sim.Model{BootTime: sim.Fixed(time.Minute)},
				withProvider(func(p *sim.Provider) provider.Provider { return listing{p} }),
				func(h *vharness, _ *sim.Options) { h.terminateStrays = terminate })
			j := h.submit(berth.JobSpec{Pool: "p", Steps: sleepSteps("30m")})
			h.untilJob(j.ID, berth.JobRunning)
			stray, err := h.prov.CreateCluster(context.Background(), provider.CreateRequest{ClusterID: "cl-stray", Pool: "p", Slots: 2})
			if err != nil {
				t.Fatal(err)
			}
			strays := func() []string {
				ps, err := h.svc.Pool(context.Background(), "p")
				if err != nil {
					t.Fatal(err)
				}
				return ps.Strays
			}
			if terminate {
				h.until("the stray terminated", 2*strayEvery, func() bool {
					return h.simCluster(stray).TerminateAsked
				})
				h.until("no stray reported once it is gone", 2*strayEvery, func() bool { return len(strays()) == 0 })
			} else {
				h.until("the stray reported", 2*strayEvery, func() bool { return slices.Equal(strays(), []string{stray}) })
				h.run(2 * strayEvery)
				if h.simCluster(stray).TerminateAsked {
					t.Error("the stray was terminated with TerminateStrays off")
				}
			}
			if got := h.job(j.ID); got.State != berth.JobRunning {
				t.Errorf("job %s, want still running on Berth's own cluster", got.State)
			}
			for _, c := range h.clusters(berth.ClusterReady) {
				if h.simCluster(c.ProviderID).TerminateAsked {
					t.Errorf("Berth's own cluster %s was terminated", c.ID)
				}
			}
		})
	}
}
