package scheduler

import (
	"strings"
	"testing"
	"time"
)

func expect(at time.Duration, jobs int) func(*PoolView) {
	return func(p *PoolView) {
		p.Expected = append(p.Expected, Arrival{Pool: p.Pool.Name, At: t0.Add(at), Jobs: jobs})
	}
}
func boot(d time.Duration) func(*PoolView) { return func(p *PoolView) { p.BootTime = d } }
func ends(at ...time.Duration) func(*PoolView) {
	return func(p *PoolView) {
		for _, a := range at {
			p.Ends = append(p.Ends, t0.Add(a))
		}
	}
}
func idleAuto(p *PoolView) { p.Pool.IdleAuto = true }
func foreseen(p *PoolView) { p.Foreseen = true }

func startsOf(p Plan) (n int, reasons []string) {
	for _, s := range p.Start {
		reasons = append(reasons, s.Reason)
	}
	return len(p.Start), reasons
}

// Work expected within a boot (and the slack) gets its clusters now, as
// many as its jobs need beyond what the pool will have free, within
// max_clusters; work further off wakes the loop a lead before it.
func TestAnticipatedStarts(t *testing.T) {
	tests := []struct {
		name  string
		snap  Snapshot
		want  int
		wake  time.Duration // from t0; 0 for none expected
		cause string
	}{
		{"expected within the boot", Snapshot{Now: t0, Pools: []PoolView{pool("b", 2, 0, 8, boot(8*time.Minute), expect(5*time.Minute, 5))}},
			3, 0, "expected: 5 jobs within 9m"},
		{"expected beyond the lead: none yet, a wake-up a lead before", Snapshot{Now: t0, Pools: []PoolView{pool("b", 2, 0, 8, boot(8*time.Minute), expect(30*time.Minute, 5))}},
			0, 21 * time.Minute, ""},
		{"bounded by max_clusters", Snapshot{Now: t0, Pools: []PoolView{pool("b", 1, 0, 2, boot(8*time.Minute), expect(time.Minute, 9))}},
			2, 0, "expected"},
		{"free slots count", Snapshot{Now: t0, Pools: []PoolView{pool("b", 2, 0, 8, boot(8*time.Minute), expect(time.Minute, 3))},
			Clusters: []ClusterView{cl("c1", "b", ready, 2, 0)}}, 1, 0, "expected"},
		{"slots that free before the work count", Snapshot{Now: t0, Pools: []PoolView{pool("b", 1, 0, 8, boot(8*time.Minute), expect(5*time.Minute, 1), ends(4*time.Minute))},
			Clusters: []ClusterView{cl("c1", "b", ready, 1, 1)}}, 0, 0, ""},
		{"a starting cluster counts", Snapshot{Now: t0, Pools: []PoolView{pool("b", 2, 0, 8, boot(8*time.Minute), expect(5*time.Minute, 2))},
			Clusters: []ClusterView{cl("c1", "b", starting, 2, 0, createdAgo(time.Minute))}}, 0, 0, ""},
		{"a blocked pool starts none", Snapshot{Now: t0, Pools: []PoolView{pool("b", 2, 0, 8, boot(8*time.Minute), expect(time.Minute, 4), blocked)}},
			0, 0, ""},
		{"unknown boot time: the default", Snapshot{Now: t0, Pools: []PoolView{pool("b", 2, 0, 8, expect(DefaultBootTime, 2))}},
			1, 0, "within 11m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Schedule(tt.snap)
			n, reasons := startsOf(p)
			if n != tt.want {
				t.Fatalf("%d starts (%v), want %d", n, reasons, tt.want)
			}
			for _, r := range reasons {
				if !strings.Contains(r, tt.cause) {
					t.Errorf("start reason %q, want it to say %q", r, tt.cause)
				}
			}
			if tt.wake > 0 && !p.WakeAt.Equal(t0.Add(tt.wake)) {
				t.Errorf("wake at %s, want %s", p.WakeAt.Sub(t0), tt.wake)
			}
		})
	}
}

// idle_timeout: auto drains an idle cluster at once when the pool's work
// foretells what follows and none is expected here within a boot; keeps
// it a boot time when it cannot tell; and keeps what expected work needs,
// but no longer than a lead past its timeout.
func TestIdleAuto(t *testing.T) {
	const b = 8 * time.Minute
	tests := []struct {
		name   string
		pool   PoolView
		idle   time.Duration
		drains bool
	}{
		{"foreseen, nothing expected: at once", pool("a", 2, 0, 4, idleAuto, boot(b), foreseen), time.Second, true},
		{"not foreseen: kept a boot time", pool("a", 2, 0, 4, idleAuto, boot(b)), 5 * time.Minute, false},
		{"not foreseen, idle a boot time: drained", pool("a", 2, 0, 4, idleAuto, boot(b)), b + time.Second, true},
		{"work expected within the boot: kept", pool("a", 2, 0, 4, idleAuto, boot(b), foreseen, expect(5*time.Minute, 1)), 7 * time.Minute, false},
		{"kept no longer than a lead past the timeout", pool("a", 2, 0, 4, idleAuto, boot(b), foreseen, expect(5*time.Minute, 1)), 2*b + 2*time.Minute, true},
		{"fixed timeout, work expected: kept past it", pool("a", 2, 0, 4, idleTimeout(time.Minute), boot(b), expect(5*time.Minute, 1)), 2 * time.Minute, false},
		{"fixed timeout, nothing expected: drained", pool("a", 2, 0, 4, idleTimeout(time.Minute), boot(b)), 2 * time.Minute, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Schedule(Snapshot{Now: t0, Pools: []PoolView{tt.pool},
				Clusters: []ClusterView{cl("c1", "a", ready, 2, 0, idleFor(tt.idle))}})
			if got := len(p.Drain) == 1; got != tt.drains {
				t.Errorf("drained %v (%+v), want %v", got, p.Drain, tt.drains)
			}
			if len(p.Start) != 0 {
				t.Errorf("started %+v: the idle cluster has room", p.Start)
			}
		})
	}
}
