package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/berthhq/berth/internal/emulator"
)

// runEmulator serves the EMR emulator until the context ends.
func runEmulator(ctx context.Context, e *env, args []string) error {
	fs := e.flags("emulator", "emulator [--listen ADDR] [--boot-time D] [flags]",
		`Serve an emulator of AWS EMR, and of the S3 its step logs go to, on a
loopback address, until interrupted. Point an EMR pool's endpoint (or any
aws-sdk client's BaseEndpoint, with S3 path-style) at the URL it prints.
Clusters boot, bootstrap and run steps on the wall clock: a step of
command-runner.jar runs its args as a process on this machine, which is why
the emulator serves loopback only. POST /emulator/spot-loss and the other
control endpoints inject faults; GET /emulator/stats counts the calls.
A duration of 0 makes its change at once.`)
	listen := fs.String("listen", "127.0.0.1:4599", "loopback `address` to serve on (port 0: any free port)")
	o := emulator.Options{}
	fs.DurationVar(&o.BootTime, "boot-time", 2*time.Second, "how long a cluster is STARTING")
	fs.DurationVar(&o.BootstrapTime, "bootstrap-time", time.Second, "how long a cluster is BOOTSTRAPPING")
	fs.DurationVar(&o.TerminateTime, "terminate-time", time.Second, "how long a cluster is TERMINATING")
	fs.DurationVar(&o.JarStepTime, "jar-step-time", 5*time.Second, "how long a step of a jar other than command-runner.jar runs")
	fs.DurationVar(&o.LogDelay, "log-delay", time.Second, "how long after a step ends its logs reach the cluster's LogUri")
	fs.DurationVar(&o.LossLag, "loss-lag", time.Second, "how long after its steps fail a lost cluster says so")
	fs.Float64Var(&o.IdleScale, "idle-scale", 1, "factor on auto-termination idle timeouts (0.01: a 60-second policy acts after 0.6 s)")
	fs.BoolVar(&o.Throttle, "throttle", false, "throttle calls at EMR's rates (token buckets per API and per account)")
	verbose := fs.Bool("v", false, "log every call")
	pos, err := fs.parseAll(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fs.usageErr("no arguments expected, got %q", pos[0])
	}
	for name, d := range map[string]time.Duration{"--boot-time": o.BootTime, "--bootstrap-time": o.BootstrapTime,
		"--terminate-time": o.TerminateTime, "--jar-step-time": o.JarStepTime, "--log-delay": o.LogDelay, "--loss-lag": o.LossLag} {
		if d < 0 {
			return fs.usageErr("%s %s: cannot be negative", name, d)
		}
	}
	if !(o.IdleScale > 0) {
		return fs.usageErr("--idle-scale %g: must be above 0", o.IdleScale)
	}
	if err := loopback(*listen); err != nil {
		return fs.usageErr("--listen %s: %v", *listen, err)
	}
	// 0 means the emulator's default to the package; here it means none.
	for _, d := range []*time.Duration{&o.BootTime, &o.BootstrapTime, &o.TerminateTime, &o.JarStepTime, &o.LogDelay, &o.LossLag} {
		if *d == 0 {
			*d = -1
		}
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	o.Log = slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))

	emu, err := emulator.Listen(*listen, o)
	if err != nil {
		return fmt.Errorf("emulator: %w", err)
	}
	fmt.Fprintf(e.stdout, "EMR emulator on %s (S3 path-style on the same URL; control endpoints under /emulator/)\n", emu.URL())

	select {
	case <-ctx.Done():
	case err = <-emu.Done():
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return errors.Join(err, emu.Close())
}

// loopback checks that addr is host:port with a loopback host.
func loopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return errors.New("want a loopback address such as 127.0.0.1:4599: steps run as processes on this machine")
}
