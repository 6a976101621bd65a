package cli

import (
	"context"
	"io"
	"log/slog"

	"github.com/berthhq/berth/internal/demo"
)

// runDemo plays the two problems Berth exists for on an embedded server.
func runDemo(ctx context.Context, e *env, args []string) error {
	fs := e.flags("demo", "demo [--bins N] [--emr] [-v]", `Start an embedded Berth server with local pools and play, as a workflow
engine would, the two problems it exists for: serial phases on three cluster
shapes with a cluster killed midway, and one phase of parallel bins on a
pool that scales out and back in. Needs nothing set up; leaves nothing
running. With --emr the pools are EMR pools on an EMR emulator the demo starts
on a loopback address (Berth's EMR provider and the real AWS SDK against
EMR's wire protocol), and the kill is a spot reclaim.`)
	bins := fs.Int("bins", 24, "number of parallel bins (at least 20)")
	onEMR := fs.Bool("emr", false, "play it on EMR pools against an embedded EMR emulator")
	verbose := fs.Bool("v", false, "also print the server's logs")
	pos, err := fs.parseAll(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fs.usageErr("no arguments expected, got %q", pos[0])
	}
	if *bins < 20 {
		return fs.usageErr("--bins must be at least 20")
	}
	var logs io.Writer = io.Discard
	if *verbose {
		logs = e.stderr
	}
	_, err = demo.Run(ctx, e.stdout, demo.Options{Bins: *bins, EMR: *onEMR, Log: slog.New(slog.NewTextHandler(logs, nil))})
	return err
}
