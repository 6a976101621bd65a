package workload

import (
	"reflect"
	"testing"
	"time"
)

func TestInstancesReplay(t *testing.T) {
	late := Instance{Pipeline: "nightly", N: 1, Arrival: time.Hour, Phases: []InstancePhase{{Pool: "a", Durations: []time.Duration{time.Minute}}}}
	early := Instance{Pipeline: "pool/a", N: 0, Arrival: time.Minute, Phases: []InstancePhase{{Pool: "a", Durations: []time.Duration{2 * time.Minute, 3 * time.Minute}}}}
	tie := Instance{Pipeline: "nightly", N: 0, Arrival: time.Hour, Phases: []InstancePhase{{Pool: "a", Durations: []time.Duration{time.Second}}}}
	w := &Workload{
		// The pipeline must not be expanded when the workload replays.
		Pipelines: []Pipeline{{Name: "file", Count: 3, Every: time.Minute, Phases: []Phase{{Pool: "a", Jobs: 1, Duration: time.Minute}}}},
		Replay:    []Instance{late, early, tie},
	}
	got := w.Instances()
	want := []Instance{early, late, tie}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Instances():\n got %+v\nwant %+v (by arrival, ties in Replay's order)", got, want)
	}
	if w.Replay[0].Pipeline != "nightly" || w.Replay[0].N != 1 {
		t.Errorf("Instances() reordered the workload's Replay: %+v", w.Replay)
	}

	w.Replay = nil
	if got := w.Instances(); len(got) != 3 || got[0].Pipeline != "file" {
		t.Errorf("Instances() without Replay: %+v, want the pipeline's 3 instances", got)
	}
}
