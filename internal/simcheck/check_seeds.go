package simcheck

import (
	"context"
	"fmt"
	"io"
	"time"
)

// Summary is what a range of seeds found.
type Summary struct {
	Seeds     int
	Simulated time.Duration
	Failed    int
	Wall      time.Duration
}

// Seeds runs seeds o.Seed … o.Seed+n-1 with o's other options and writes
// one line per failed seed, with the command that replays it, then a last
// line "N seeds, X simulated hours, F failed". With verbose, each seed's
// event log is written too.
func Seeds(ctx context.Context, w io.Writer, base Options, n int, verbose bool) (Summary, error) {
	var sum Summary
	start := time.Now()
	hours := base.Hours
	for i := range n {
		if err := ctx.Err(); err != nil {
			return sum, err
		}
		seed := base.Seed + uint64(i)
		o := base
		o.Seed = seed
		if verbose {
			o.Log = w
			fmt.Fprintf(w, "--- seed %d\n", seed)
		}
		res, err := Run(ctx, o)
		if err != nil {
			return sum, fmt.Errorf("seed %d: %w", seed, err)
		}
		sum.Seeds++
		sum.Simulated += res.Simulated
		if len(res.Failures) > 0 {
			sum.Failed++
			flags := ""
			if h := hoursOr(hours); h != DefaultHours {
				flags += fmt.Sprintf(" --hours %g", h)
			}
			if base.SQLite {
				flags += " --sqlite"
			}
			fmt.Fprintf(w, "seed %d FAILED: %s (replay: berth sim check --from %d --seeds 1%s -v)\n", seed, res.Failures[0], seed, flags)
			for _, f := range res.Failures[1:] {
				fmt.Fprintf(w, "    also: %s\n", f)
			}
		}
	}
	sum.Wall = time.Since(start)
	fmt.Fprintf(w, "%d seeds, %.0f simulated hours, %d failed\n", sum.Seeds, sum.Simulated.Hours(), sum.Failed)
	return sum, nil
}

func hoursOr(h float64) float64 {
	if h <= 0 {
		return DefaultHours
	}
	return h
}
