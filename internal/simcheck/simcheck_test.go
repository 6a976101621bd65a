package simcheck

import (
	"strings"
	"testing"
)

func TestOneSeed(t *testing.T) {
	res, err := Run(t.Context(), Options{Seed: 1, Hours: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("seed 1: %d jobs, %d events, %s simulated, faults %v", res.Jobs, res.Events, res.Simulated, res.Faults)
	if len(res.Failures) > 0 {
		t.Fatalf("failures:\n%s\n\nlog tail:\n%s", strings.Join(res.Failures, "\n"), strings.Join(tail(res.Log, 60), "\n"))
	}
}

func tail(s []string, n int) []string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func TestManySeeds(t *testing.T) {
	for seed := uint64(2); seed < 12; seed++ {
		res, err := Run(t.Context(), Options{Seed: seed, Hours: 4})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Failures) > 0 {
			t.Errorf("seed %d:\n%s", seed, strings.Join(res.Failures, "\n"))
		}
	}
}
