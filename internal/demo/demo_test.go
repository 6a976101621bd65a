package demo

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestDemoRecoversAndScales(t *testing.T) {
	for _, onEMR := range []bool{false, true} {
		t.Run(map[bool]string{false: "local", true: "emr"}[onEMR], func(t *testing.T) {
			t.Parallel()
			testDemo(t, onEMR)
		})
	}
}

// testDemo plays the demo on local pools, or on emr pools against the
// EMR emulator with a spot reclaim for the kill: both problems must come
// out the same.
func testDemo(t *testing.T, onEMR bool) {
	var out bytes.Buffer
	res, err := Run(context.Background(), &out, Options{
		Bins:     20,
		StepTime: 200 * time.Millisecond,
		Log:      slog.New(slog.NewTextHandler(t.Output(), nil)),
		EMR:      onEMR,
	})
	t.Log(out.String())
	if err != nil {
		t.Fatal(err)
	}
	if res.Jobs != 28 || res.Succeeded != res.Jobs {
		t.Errorf("%d of %d jobs succeeded, want 28 of 28", res.Succeeded, res.Jobs)
	}
	if res.LostClusters != 1 || res.Attempts != res.Jobs+1 {
		t.Errorf("lost %d clusters with %d attempts; want the one killed cluster and one extra attempt", res.LostClusters, res.Attempts)
	}
	if res.MaxBinClusters < 2 {
		t.Errorf("pool bins peaked at %d clusters; it should scale out with 20 bins", res.MaxBinClusters)
	}
	for _, want := range []string{"Berth re-ran it by itself", "scaled back in to 0 clusters", "nothing left running"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
}
