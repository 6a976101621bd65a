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
	var out bytes.Buffer
	res, err := Run(context.Background(), &out, Options{
		Bins:     20,
		StepTime: 200 * time.Millisecond,
		Log:      slog.New(slog.NewTextHandler(t.Output(), nil)),
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
