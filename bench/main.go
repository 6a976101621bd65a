// Command bench measures Berth side by side with River, the Go job queue,
// on the same machine in the same run, and prints one table. Berth runs as
// real `berth serve` processes driven over HTTP on loopback; River runs in
// this process on SQLite opened the way Berth opens its store. bench/run
// builds both and runs this; BENCHMARKS.md says what each row measures.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// options are the sizes of a run. The full set fits in about 15 minutes on
// a 2-core machine; -quick is a smoke test of every code path.
type options struct {
	clients       int           // concurrent clients of B2 and the backlogs (River: inserters)
	burnJobs      int           // B1 and River's burn-down
	burnLimit     time.Duration // the most one burn-down may take
	submitFor     time.Duration // B2 with many clients, and River's peer
	serialFor     time.Duration // B2 with one client, and River's peer
	batchJobs     int           // B2 batch, and River's InsertMany
	dispatchJobs  int           // B3 samples
	localJobs     int           // local provider throughput
	scaleJobs     int           // B4 queued jobs
	scaleClusters int           // B4 fleet
	scaleSamples  int           // B4 submissions timed against the empty and the full queue
}

var fullOptions = options{
	clients: 64, burnJobs: 100_000, burnLimit: 10 * time.Minute,
	submitFor: 30 * time.Second, serialFor: 10 * time.Second, batchJobs: 100_000,
	dispatchJobs: 200, localJobs: 3000,
	// A million queued jobs, as the goal says: batches queue them in
	// about a minute and a half here.
	scaleJobs: 1_000_000, scaleClusters: 1000, scaleSamples: 1000,
}

var quickOptions = options{
	clients: 64, burnJobs: 2000, burnLimit: 2 * time.Minute,
	submitFor: 2 * time.Second, serialFor: time.Second, batchJobs: 5000,
	dispatchJobs: 20, localJobs: 200,
	scaleJobs: 5000, scaleClusters: 20, scaleSamples: 50,
}

// suite is one run: where it works, the berth binary, and what it found.
type suite struct {
	// work gets a directory for every server and database, all deleted
	// together once the last measurement is done: deleting a run's
	// thousands of files makes the file system slower at creating files
	// for a while (ext4 walks past recently freed inodes), which the next
	// measurement would pay for.
	work string
	bin  string
	pids string // a file per running server, named by its pid, for bench/run's trap
	opt  options
	res  *results
}

func (s *suite) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// measurement is one step of the run; keys are the prefixes of the results
// it sets, marked failed in the table when it fails.
type measurement struct {
	name string
	keys []string
	run  func(context.Context) error
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	quick := flag.Bool("quick", false, "small counts: a smoke test of every measurement, in about a minute")
	out := flag.String("o", "table", "what to print: table (Markdown) or json")
	jsonFile := flag.String("json", "", "also write the raw numbers as JSON to `file`")
	bin := flag.String("berth", "", "the berth binary to run (bench/run builds it)")
	dir := flag.String("dir", "", "work `directory` (default: a new temporary one, removed at the end)")
	only := flag.String("only", "", "comma-separated steps to run (default all): "+strings.Join(stepNames, ","))
	var set options // what the flags set; zero is the mode's default
	flag.IntVar(&set.clients, "clients", 0, "concurrent clients (default 64)")
	flag.IntVar(&set.burnJobs, "burn-jobs", 0, "jobs of each burn-down (default 100000; quick 2000)")
	flag.DurationVar(&set.burnLimit, "burn-limit", 0, "the most a burn-down may take (default 10m)")
	flag.DurationVar(&set.submitFor, "submit-for", 0, "duration of B2 with many clients (default 30s)")
	flag.DurationVar(&set.serialFor, "serial-for", 0, "duration of B2 with one client (default 10s)")
	flag.IntVar(&set.batchJobs, "batch-jobs", 0, "jobs of B2's batch run (default 100000)")
	flag.IntVar(&set.dispatchJobs, "dispatch-jobs", 0, "B3 samples (default 200)")
	flag.IntVar(&set.localJobs, "local-jobs", 0, "jobs of the local throughput run (default 3000)")
	flag.IntVar(&set.scaleJobs, "scale-jobs", 0, "B4 queued jobs (default 1000000)")
	flag.IntVar(&set.scaleClusters, "scale-clusters", 0, "B4 clusters, at most 1000 (default 1000)")
	flag.IntVar(&set.scaleSamples, "scale-samples", 0, "B4 submissions timed on the empty and on the full queue (default 1000)")
	flag.Parse()
	if *bin == "" {
		return errors.New("-berth is required (bench/run builds it)")
	}
	if *out != "table" && *out != "json" {
		return fmt.Errorf("-o %q: want table or json", *out)
	}
	o := fullOptions
	if *quick {
		o = quickOptions
	}
	o.override(set)

	root := *dir
	if root == "" {
		var err error
		if root, err = os.MkdirTemp("", "berth-bench-"); err != nil {
			return err
		}
		defer os.RemoveAll(root)
	}
	abs, err := filepath.Abs(*bin)
	if err != nil {
		return err
	}
	s := &suite{bin: abs, pids: filepath.Join(root, "pids"), opt: o, res: newResults()}
	if err := os.MkdirAll(s.pids, 0o755); err != nil {
		return err
	}
	if s.work, err = os.MkdirTemp(root, "work-"); err != nil {
		return err
	}
	defer os.RemoveAll(s.work)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var want []string
	if *only != "" {
		want = strings.Split(*only, ",")
		for _, w := range want {
			if !slices.Contains(stepNames, w) {
				return fmt.Errorf("-only %s: no such step; the steps are %s", w, strings.Join(stepNames, ","))
			}
		}
	}
	load0 := loadAverage()
	t0 := time.Now()
	var failed []string
	steps := map[string]stepRun{}
	for _, st := range s.steps() {
		if want != nil && !slices.Contains(want, st.name) {
			continue
		}
		s.logf("[%s] load average %s", st.name, loadAverage())
		t := time.Now()
		err := st.run(ctx)
		steps[st.name] = stepRun{Seconds: time.Since(t).Seconds(), LoadAfter: loadAverage()}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			s.logf("%s FAILED: %v", st.name, err)
			failed = append(failed, st.name)
			s.res.fail(st.keys...)
		}
	}
	took := time.Since(t0)
	load1 := loadAverage()

	table := make([]row, 0)
	for _, r := range rows(o) {
		table = append(table, r.fill(s.res))
	}
	rep := report{Options: o.asMap(), Values: s.res.values, Notes: s.res.notes, Rows: table, Seconds: took.Seconds(),
		LoadBefore: load0, LoadAfter: load1, Steps: steps}
	if *jsonFile != "" {
		f, err := os.Create(*jsonFile)
		if err != nil {
			return err
		}
		if err := writeJSON(f, rep); err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	if *out == "json" {
		if err := writeJSON(os.Stdout, rep); err != nil {
			return err
		}
	} else {
		printTable(os.Stdout, table)
		fmt.Printf("\nOne run, %s, on %d CPUs; load average (1, 5, 15 min) %s before, %s after. Ratio is Berth ÷ River.\n",
			took.Round(time.Second), runtime.NumCPU(), load0, load1)
	}
	if len(failed) > 0 {
		return fmt.Errorf("failed: %s", strings.Join(failed, ", "))
	}
	return nil
}

var stepNames = []string{"b1-32", "river-burn-32", "b1-1024", "river-burn-1024", "b2", "river-insert", "b3", "local", "b4"}

// steps interleave Berth and its River peer, so that whatever drifts
// during the run (the disk, the page cache, a neighbour) hits both.
func (s *suite) steps() []measurement {
	return []measurement{
		{"b1-32", []string{"berth.burn32."}, func(ctx context.Context) error { return s.burnDown(ctx, 8, 4) }},
		{"river-burn-32", []string{"river.burn32."}, func(ctx context.Context) error { return s.riverBurnDown(ctx, 32) }},
		{"b1-1024", []string{"berth.burn1024."}, func(ctx context.Context) error { return s.burnDown(ctx, 32, 32) }},
		{"river-burn-1024", []string{"river.burn1024."}, func(ctx context.Context) error { return s.riverBurnDown(ctx, 1024) }},
		{"b2", []string{"berth.submit", "berth.batch."}, s.submissions},
		{"river-insert", []string{"river.insert"}, s.riverInserts},
		{"b3", []string{"berth.dispatch."}, s.dispatch},
		{"local", []string{"berth.local."}, s.localThroughput},
		{"b4", []string{"berth.scale."}, s.scale},
	}
}

// override takes the fields a flag set (non-zero) over the defaults.
func (o *options) override(set options) {
	pick := func(dst *int, v int) {
		if v != 0 {
			*dst = v
		}
	}
	pickD := func(dst *time.Duration, v time.Duration) {
		if v != 0 {
			*dst = v
		}
	}
	pick(&o.clients, set.clients)
	pick(&o.burnJobs, set.burnJobs)
	pickD(&o.burnLimit, set.burnLimit)
	pickD(&o.submitFor, set.submitFor)
	pickD(&o.serialFor, set.serialFor)
	pick(&o.batchJobs, set.batchJobs)
	pick(&o.dispatchJobs, set.dispatchJobs)
	pick(&o.localJobs, set.localJobs)
	pick(&o.scaleJobs, set.scaleJobs)
	pick(&o.scaleClusters, set.scaleClusters)
	pick(&o.scaleSamples, set.scaleSamples)
}

func (o options) asMap() map[string]any {
	return map[string]any{
		"clients": o.clients, "burn_jobs": o.burnJobs, "burn_limit": o.burnLimit.String(),
		"submit_for": o.submitFor.String(), "serial_for": o.serialFor.String(), "batch_jobs": o.batchJobs,
		"dispatch_jobs": o.dispatchJobs, "local_jobs": o.localJobs,
		"scale_jobs": o.scaleJobs, "scale_clusters": o.scaleClusters, "scale_samples": o.scaleSamples,
		"river_fetch_cooldown": riverFetchCooldown.String(), "river_fetch_poll_interval": riverFetchPollInterval.String(),
		"cpus": runtime.NumCPU(),
	}
}

// loadAverage is the machine's from /proc/loadavg: the suite shares the
// CPUs with whatever else runs, and the table should say how busy they were.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
