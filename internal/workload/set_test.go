package workload

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/config"
)

const setWorkload = `
pools:
  - {name: spark, provider: sim, slots: 2, max_clusters: 3, idle_timeout: 10m, price_per_hour: 12.5,
     sim: {boot_time: 8m, terminate_time: 1m, loss_per_cluster_hour: 0.05}}
  - {name: small, provider: sim, slots: 1}
pipelines:
  - {name: p, count: 1, phases: [{pool: spark, duration: 1h}]}
`

func parseWorkload(t *testing.T, yaml string) *Workload {
	t.Helper()
	w, err := Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestApplySet(t *testing.T) {
	w := parseWorkload(t, setWorkload)
	set := "max_clusters=6, idle_timeout=5m,slots=4,min_clusters=1,price_per_hour=3.5,boot_time=5m," +
		"loss_per_cluster_hour=0.1,terminate_time=30s,boot_timeout=30m,max_lifetime=2h"
	if err := ApplySet(w, "spark", set); err != nil {
		t.Fatal(err)
	}
	want := config.Pool{
		Name: "spark", Provider: config.ProviderSim, Slots: 4, MinClusters: 1, MaxClusters: 6,
		IdleTimeout: config.IdleTimeout(5 * time.Minute), BootTimeout: config.Duration(30 * time.Minute),
		MaxLifetime: config.Duration(2 * time.Hour), PricePerHour: 3.5,
		Sim: &config.SimSpec{BootTime: config.Duration(5 * time.Minute), TerminateTime: config.Duration(30 * time.Second), LossPerClusterHour: 0.1},
	}
	if got, _ := w.Pool("spark"); !reflect.DeepEqual(got, want) {
		t.Errorf("pool spark:\n got %+v %+v\nwant %+v %+v", got, got.Sim, want, want.Sim)
	}
	if got, want := w.Pools[1], parseWorkload(t, setWorkload).Pools[1]; !reflect.DeepEqual(got, want) {
		t.Errorf("pool small changed: %+v, want %+v", got, want)
	}
}

func TestApplySetErrors(t *testing.T) {
	tests := []struct {
		name, pool, set, want string
	}{
		{"unknown pool", "large", "slots=2", `no pool "large" (the pools: spark, small)`},
		{"empty", "spark", " ", "nothing to set"},
		{"no value", "spark", "slots", `"slots" is not key=value`},
		{"unknown key", "spark", "slots=2,max_cluster=4", `unknown key "max_cluster" (the keys: boot_time, boot_timeout,`},
		{"twice", "spark", "slots=2,slots=3", "slots given twice"},
		{"not an int", "spark", "max_clusters=6.5", `pool "spark": max_clusters: "6.5" is not a whole number`},
		{"not a number", "spark", "price_per_hour=cheap", `pool "spark": price_per_hour: "cheap" is not a number`},
		{"not a duration", "spark", "idle_timeout=5", `pool "spark": idle_timeout: "5" is not a duration`},
		{"out of range", "spark", "max_clusters=0", `pool "spark": max_clusters: must be 1..1000, not 0`},
		{"min above max", "spark", "min_clusters=4", `pool "spark": max_clusters: must be ≥ min_clusters (4)`},
		{"boot past timeout", "spark", "boot_time=25m", `pool "spark": sim.boot_time: must be less than the pool's boot_timeout`},
		{"not finite", "spark", "loss_per_cluster_hour=NaN", `pool "spark": sim.loss_per_cluster_hour: must be a number ≥ 0`},
		// A good item before a bad one changes nothing either.
		{"good then bad", "spark", "slots=8,boot_time=-1m", `pool "spark": sim.boot_time: must be ≥ 0`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := parseWorkload(t, setWorkload)
			err := ApplySet(w, tt.pool, tt.set)
			if err == nil {
				t.Fatalf("ApplySet(%q, %q) succeeded", tt.pool, tt.set)
			}
			if !errors.Is(err, berth.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want one wrapping ErrInvalid that says %q", err, tt.want)
			}
			if !reflect.DeepEqual(w, parseWorkload(t, setWorkload)) {
				t.Errorf("a failed ApplySet changed the workload: %+v", w.Pools)
			}
		})
	}
}
