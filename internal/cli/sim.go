package cli

import (
	"context"
	"fmt"

	"github.com/berthhq/berth/internal/simcheck"
)

func runSim(ctx context.Context, e *env, args []string) error {
	return e.runGroup(ctx, "sim", "Run Berth's service in simulated time.", []command{
		{"check", "run seeds of generated workloads with faults and check the invariants", runSimCheck},
	}, args)
}

func runSimCheck(ctx context.Context, e *env, args []string) error {
	fs := e.flags("sim check", "sim check [--seeds N] [--from S] [--hours H] [--sqlite] [-v]", `Run the real service (its loop, scheduler and policy) on the simulated
executor with the sim provider, over generated workloads with faults:
cluster kills, capacity shortages, provider errors, throttling, slow calls,
failed store commits and crashes of Berth itself. The invariants are
checked after every event. Prints one line per failed seed with the command
that replays it (-v prints a seed's event log), then a last line
"N seeds, X simulated hours, F failed". Exits 0 only when none failed.`)
	seeds := fs.Int("seeds", 100, "number of seeds to run")
	from := fs.Uint64("from", 1, "first seed")
	hours := fs.Float64("hours", simcheck.DefaultHours, "simulated hours per seed")
	verbose := fs.Bool("v", false, "print each seed's event log")
	useSQLite := fs.Bool("sqlite", false, "run over the SQLite store in a temporary directory instead of the in-memory one")
	pos, err := fs.parseAll(args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) > 0:
		return fs.usageErr("no arguments expected, got %q", pos[0])
	case *seeds < 1:
		return fs.usageErr("--seeds must be at least 1")
	case !(*hours > 0) || *hours > 24*365:
		return fs.usageErr("--hours must be above 0 and at most a year")
	}
	sum, err := simcheck.Seeds(ctx, e.stdout, simcheck.Options{Seed: *from, Hours: *hours, SQLite: *useSQLite}, *seeds, *verbose)
	if err != nil {
		return err
	}
	if sum.Failed > 0 {
		return fmt.Errorf("%d of %d seeds failed", sum.Failed, sum.Seeds)
	}
	return nil
}
