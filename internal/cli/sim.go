package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/berthhq/berth/internal/config"
	"github.com/berthhq/berth/internal/simcheck"
	"github.com/berthhq/berth/internal/simulate"
	"github.com/berthhq/berth/internal/store/sqlite"
	"github.com/berthhq/berth/internal/workload"
)

const simSummary = "Run Berth's service in simulated time."

// runSim is `berth sim WORKLOAD.yaml` and the `berth sim check` command.
func runSim(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 && args[0] == "check" {
		return runSimCheck(ctx, e, args[1:])
	}
	return runSimWorkload(ctx, e, args)
}

func runSimWorkload(ctx context.Context, e *env, args []string) error {
	fs := e.flags("sim", "sim WORKLOAD.yaml [-o json] [--timeline out.svg] [--policies berth,oracle,...] [--loss R]\n       berth sim --from-store berth.db [--config berth.yaml] [--since 168h] [--pool A --set max_clusters=6,idle_timeout=5m] [flags]\n       berth sim check [flags]", simSummary+`

Runs the workload's pipelines under several policies on the same random
draws (job durations, cluster losses) and prints one line per policy:
  berth              the real service (loop, policy, scheduler) in virtual time
  airflow-static     a cluster per pool per pipeline instance, parallel jobs
                     split over static_clusters clusters, a person (after
                     manual_response) recreating lost clusters
  cluster-per-phase  a fresh cluster per phase, the phase retried whole on a loss
  oracle             clairvoyant: exactly the clusters running jobs need, each
                     booted just in time, no losses
cost and cluster-hours count each cluster from its request to its end;
latency is a pipeline instance's arrival to the end of its last job; wait is
a job's submission to its start. -o json prints
{"policies": {NAME: {"cost", "cluster_hours", ...}}}.

--from-store replays what a real Berth ran — its jobs' arrivals, durations
and pipeline labels, its clusters' boot times and losses — from its SQLite
store, with the pools of --config (changed by --pool and --set), so that
"what would last week have cost with 6 clusters?" is answered before
production changes.

'berth sim check' runs seeds of generated workloads with faults and checks
the invariants ('berth sim check -h').`)
	fs.StringVar(&e.output, "o", "table", "output `format`: table or json")
	timeline := fs.String("timeline", "", "write each policy's clusters and jobs over time to this SVG `file`")
	loss := fs.Float64("loss", -1, "set every pool's loss_per_cluster_hour to this `rate`")
	fromStore := fs.String("from-store", "", "replay the history in this SQLite store `file` instead of a workload file")
	cfgPath := fs.String("config", "", "with --from-store: the configuration `file` the store ran under (default: the embedded default)")
	since := fs.Duration("since", 0, "with --from-store: replay the jobs created within this `duration` before now (default: all)")
	poolName := fs.String("pool", "", "with --set: the `pool` to change")
	set := fs.String("set", "", "change the pool's settings: `key=value,...` (slots, min_clusters, max_clusters, idle_timeout, boot_timeout, max_lifetime, price_per_hour, boot_time, terminate_time, loss_per_cluster_hour)")
	policies := fs.String("policies", strings.Join(simulate.Policies, ","), "comma-separated `policies` to run")
	pos, err := fs.parseAll(args)
	if err != nil {
		return err
	}
	switch {
	case *fromStore == "" && len(pos) != 1:
		return fs.usageErr("want one workload file (or --from-store)")
	case *fromStore != "" && len(pos) > 0:
		return fs.usageErr("give a workload file or --from-store, not both")
	case (*poolName == "") != (*set == ""):
		return fs.usageErr("--pool and --set go together")
	case *since < 0:
		return fs.usageErr("--since must not be negative")
	case *fromStore == "" && (*cfgPath != "" || *since != 0):
		return fs.usageErr("--config and --since go with --from-store")
	}
	names, err := policyList(*policies)
	if err != nil {
		return fs.usageErr("%v", err)
	}
	var w *workload.Workload
	if *fromStore != "" {
		w, err = e.replay(ctx, *fromStore, *cfgPath, *since)
	} else {
		w, err = readWorkload(pos[0])
	}
	if err != nil {
		return err
	}
	if *set != "" {
		if err := workload.ApplySet(w, *poolName, *set); err != nil {
			return err
		}
	}
	if *loss >= 0 {
		if err := w.SetLoss(*loss); err != nil {
			return fs.usageErr("--loss: %v", err)
		}
	}
	start := time.Now()
	rep, err := simulate.Run(ctx, w, names)
	if err != nil {
		return err
	}
	took := time.Since(start)
	if *timeline != "" {
		if err := writeTimeline(*timeline, rep); err != nil {
			return err
		}
	}
	if e.output == "json" {
		out := struct {
			Policies map[string]simulate.Result `json:"policies"`
		}{rep.Results}
		return printJSON(e.stdout, out)
	}
	return printSimTable(e, rep, took)
}

func readWorkload(path string) (*workload.Workload, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read workload: %w", err)
	}
	w, err := workload.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("workload %s: %w", path, err)
	}
	return w, nil
}

// replay reads a store's history as a workload, and says what it read.
func (e *env) replay(ctx context.Context, path, cfgPath string, since time.Duration) (*workload.Workload, error) {
	cfg := config.Default()
	if cfgPath != "" {
		var err error
		if cfg, err = config.Load(cfgPath); err != nil {
			return nil, err
		}
	}
	// Opening a path that is not there would make a new, empty store.
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("--from-store: %w", err)
	}
	st, err := sqlite.Open(ctx, path, nil)
	if err != nil {
		return nil, fmt.Errorf("--from-store %s: %w", path, err)
	}
	defer st.Close()
	w, sum, err := workload.FromStore(ctx, st, cfg, since, e.clock.Now())
	if err != nil {
		return nil, fmt.Errorf("--from-store %s: %w", path, err)
	}
	fmt.Fprintf(e.stderr, "replaying %d jobs in %d pipeline runs from %s (%d never ran, %d superseded by later tries)\n",
		sum.Replayed, sum.Instances, sum.Start.Format(time.RFC3339), sum.NotRun, sum.Superseded)
	return w, nil
}

func policyList(s string) ([]string, error) {
	var names []string
	seen := map[string]bool{}
	for _, n := range strings.Split(s, ",") {
		n = strings.TrimSpace(n)
		if !slices.Contains(simulate.Policies, n) {
			return nil, fmt.Errorf("--policies: unknown policy %q; want some of %s", n, strings.Join(simulate.Policies, ", "))
		}
		if !seen[n] {
			names = append(names, n)
			seen[n] = true
		}
	}
	return names, nil
}

func writeTimeline(path string, rep *simulate.Report) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("timeline: %w", err)
	}
	var traces []*simulate.Trace
	for _, n := range rep.Policies {
		traces = append(traces, rep.Traces[n])
	}
	return errors.Join(simulate.WriteTimeline(f, traces), f.Close())
}

func printSimTable(e *env, rep *simulate.Report, took time.Duration) error {
	t := newTable(e.stdout, "POLICY", "COST", "CLUSTER-H", "IDLE", "LATENCY", "P95", "WAIT P50", "WAIT P95", "MAKESPAN", "INTERVENTIONS", "LOST")
	for _, n := range rep.Policies {
		r := rep.Results[n]
		t.row(n, strconv.FormatFloat(r.Cost, 'f', 2, 64), strconv.FormatFloat(r.ClusterHours, 'f', 1, 64),
			strconv.FormatFloat(100*r.IdleFraction, 'f', 0, 64)+"%",
			simDuration(r.LatencyMean), simDuration(r.LatencyP95), simDuration(r.WaitP50), simDuration(r.WaitP95),
			simDuration(r.Makespan), strconv.Itoa(r.Interventions), strconv.Itoa(r.JobsLost))
	}
	if err := t.flush(); err != nil {
		return err
	}
	if t := rep.Traces[simulate.PolicyBerth]; t != nil {
		if p50, p90, n := t.ETAAccuracy(); n > 0 {
			fmt.Fprintf(e.stdout, "berth's estimated starts (eta) of the %d jobs that waited, against their real starts: error p50 %s, p90 %s\n",
				n, p50.Round(time.Second), p90.Round(time.Second))
		}
	}
	_, err := fmt.Fprintf(e.stdout, "%d jobs per policy, simulated in %s\n", rep.Jobs, took.Round(time.Millisecond))
	return err
}

func simDuration(d simulate.Duration) string {
	b, _ := d.MarshalText()
	return string(b)
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
