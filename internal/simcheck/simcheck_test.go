package simcheck

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// seedsUnderTest is how many seeds, of how many simulated hours, go test
// runs: a few hundred, spread over the machine's cores.
func seedsUnderTest() (n int, hours float64) {
	if testing.Short() {
		return 20, 2
	}
	if raceEnabled {
		return 100, 2
	}
	return 300, 4
}

// TestSeeds runs the real service under faults over many seeds and checks
// the invariants after every event (see the package documentation). A
// failing seed is replayed with: berth sim check --from SEED --seeds 1 -v.
func TestSeeds(t *testing.T) {
	n, hours := seedsUnderTest()
	var simulated float64
	for seed := uint64(1); seed <= uint64(n); seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			res, err := Run(t.Context(), Options{Seed: seed, Hours: hours})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Failures) > 0 {
				t.Fatalf("seed %d failed (replay: berth sim check --from %d --seeds 1 --hours %g -v):\n%s", seed, seed, hours, strings.Join(res.Failures, "\n"))
			}
			if res.Jobs == 0 {
				t.Fatalf("seed %d acknowledged no job: the workload did nothing", seed)
			}
		})
		simulated += hours
	}
	t.Logf("%d seeds, %.0f simulated hours", n, simulated)
}

// The same seed gives the same event log, byte for byte; another seed
// gives another.
func TestSeedReplays(t *testing.T) {
	run := func(seed uint64) []string {
		res, err := Run(t.Context(), Options{Seed: seed, Hours: 3})
		if err != nil {
			t.Fatal(err)
		}
		return res.Log
	}
	a, b := run(11), run(11)
	if len(a) < 100 {
		t.Fatalf("seed 11 logged only %d lines", len(a))
	}
	if !slices.Equal(a, b) {
		for i := range min(len(a), len(b)) {
			if a[i] != b[i] {
				t.Fatalf("seed 11 ran differently at line %d:\n%s\n%s", i, a[i], b[i])
			}
		}
		t.Fatalf("seed 11 logged %d lines, then %d", len(a), len(b))
	}
	if slices.Equal(a, run(12)) {
		t.Fatal("seeds 11 and 12 logged the same")
	}
}

// The harness finds what it is there to find: a service that breaks an
// invariant fails the seed. Here the store's copy of a job is corrupted
// behind the service's back, as a bug in a commit would.
func TestHarnessCatchesABrokenInvariant(t *testing.T) {
	res, err := Run(t.Context(), Options{Seed: 3, Hours: 2, corrupt: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Failures) == 0 {
		t.Fatal("a job placed twice went unnoticed")
	}
}

// berth sim check's output: one line per failed seed, then the summary.
func TestSeedsOutput(t *testing.T) {
	var out bytes.Buffer
	sum, err := Seeds(context.Background(), &out, Options{Seed: 5, Hours: 1}, 3, false)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if last := lines[len(lines)-1]; last != "3 seeds, 6 simulated hours, 0 failed" || sum.Failed != 0 {
		t.Fatalf("last line %q, summary %+v", last, sum)
	}
}
