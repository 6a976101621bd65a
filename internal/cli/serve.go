package cli

import (
	"context"
	"log/slog"

	"github.com/berthhq/berth/internal/config"
	"github.com/berthhq/berth/internal/server"
)

// runServe runs the Berth server until the context ends (SIGINT or
// SIGTERM): it then finishes the write in progress, leaves running steps
// to be adopted by the next start, and returns.
func runServe(ctx context.Context, e *env, args []string) error {
	fs := e.flags("serve", "serve [--config FILE]", `Run the Berth server: the HTTP API and the loop that places jobs on clusters.
Without --config it runs the embedded default: SQLite in berth.db in the
working directory, listening on 127.0.0.1:8080, with one local pool.`)
	path := fs.String("config", "", "configuration `file` (default: the embedded default)")
	pos, err := fs.parseAll(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fs.usageErr("no arguments expected, got %q", pos[0])
	}
	cfg := config.Default()
	if *path != "" {
		if cfg, err = config.Load(*path); err != nil {
			return err
		}
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: cfg.Level()}))
	return server.Run(ctx, cfg, server.Options{Log: log})
}
