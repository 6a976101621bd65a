// Package demo plays the two problems Berth exists for against a real,
// embedded Berth server on the local provider, the way a workflow engine
// would drive it: over the HTTP API, one task at a time.
//
//  1. Serial phases on cluster shapes: phases 1–4 on pool shape-a, 5–6 on
//     shape-b, 7–8 on shape-c, each submitted when the previous one ends.
//     Midway through phase 3 the shape-a cluster is killed, as a spot
//     reclaim would; Berth replaces it and runs phase 3 again by itself.
//  2. Parallel bins: one phase split into many independent steps on a pool
//     that scales out with the backlog and back in when it is done.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/client"
	"github.com/berthhq/berth/internal/config"
	"github.com/berthhq/berth/internal/emulator"
	"github.com/berthhq/berth/internal/server"
)

// Options tunes the demo.
type Options struct {
	// Bins is the number of parallel bins of problem 2 (at least 20).
	Bins int
	// StepTime is how long each demo step runs.
	StepTime time.Duration
	// Log receives the server's logs; nil discards them.
	Log *slog.Logger
	// EMR plays the demo on emr pools against an EMR emulator the demo
	// starts on a loopback address: Berth's EMR provider and the real AWS
	// SDK, EMR's wire protocol, and a spot reclaim in place of the kill.
	EMR bool
}

// Result is what happened, for callers that check it (the demo's test).
type Result struct {
	Jobs            int
	Succeeded       int
	Attempts        int
	LostClusters    int
	ClustersStarted int
	MaxBinClusters  int
	Cost            float64
}

// emrYAML is demoYAML on EMR, against the emulator at %[2]s.
const emrYAML = `
listen: 127.0.0.1:0
store: sqlite://%[1]s/berth.db
pools:
  - {name: shape-a, provider: emr, slots: 1, max_clusters: 1, idle_timeout: 20s, price_per_hour: 2.0, emr: %[3]s}
  - {name: shape-b, provider: emr, slots: 1, max_clusters: 1, idle_timeout: 20s, price_per_hour: 4.0, emr: %[3]s}
  - {name: shape-c, provider: emr, slots: 1, max_clusters: 1, idle_timeout: 20s, price_per_hour: 8.0, emr: %[3]s}
  - {name: bins, provider: emr, slots: 3, max_clusters: 4, idle_timeout: 2s, price_per_hour: 3.0, emr: %[3]s}
`

// emrSpec is the demo pools' EMR spec; %[2]s is the emulator's URL.
const emrSpec = `{region: us-east-1, endpoint: "%[2]s", release_label: emr-7.5.0, applications: [Spark], log_uri: "s3://berth-demo/logs/", poll_interval: 200ms, instance_groups: [{role: MASTER, instance_type: m5.xlarge, count: 1}, {role: CORE, instance_type: r5.xlarge, count: 2, market: SPOT}]}`

// emrRateScale raises Berth's EMR rate limits for the emulator, which
// enforces none: at EMR's real pace (AddJobFlowSteps 0.5/s) the demo's
// steps would queue up behind the limiter for minutes.
const emrRateScale = 20

const demoYAML = `
listen: 127.0.0.1:0
store: sqlite://%[1]s/berth.db
pools:
  - {name: shape-a, provider: local, slots: 1, max_clusters: 1, idle_timeout: 20s, price_per_hour: 2.0, local: {boot_time: 1s, dir: %[1]s/local}}
  - {name: shape-b, provider: local, slots: 1, max_clusters: 1, idle_timeout: 20s, price_per_hour: 4.0, local: {boot_time: 1s, dir: %[1]s/local}}
  - {name: shape-c, provider: local, slots: 1, max_clusters: 1, idle_timeout: 20s, price_per_hour: 8.0, local: {boot_time: 1s, dir: %[1]s/local}}
  - {name: bins, provider: local, slots: 3, max_clusters: 4, idle_timeout: 2s, price_per_hour: 3.0, local: {boot_time: 1s, dir: %[1]s/local}}
`

// Run plays the demo, writing its story to w. It leaves nothing running
// and nothing on disk.
func Run(ctx context.Context, w io.Writer, o Options) (Result, error) {
	if o.Bins < 20 {
		o.Bins = 24
	}
	if o.StepTime <= 0 {
		o.StepTime = time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	dir, err := os.MkdirTemp("", "berth-demo-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(dir)
	yaml, where := fmt.Sprintf(demoYAML, filepath.ToSlash(dir)), "four local pools"
	so := server.Options{Log: o.Log}
	var emu *emulator.Server
	if o.EMR {
		emu, err = startEmulator(dir, o.Log)
		if err != nil {
			return Result{}, err
		}
		defer emu.Close()
		url := emu.URL()
		spec := fmt.Sprintf(emrSpec, "", url)
		yaml, where = fmt.Sprintf(emrYAML, filepath.ToSlash(dir), url, spec), "four emr pools on an EMR emulator at "+url
		so.EMRCredentials = credentials.NewStaticCredentialsProvider("AKIDDEMO", "demo", "")
		so.EMRRateScale = emrRateScale
	}
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		return Result{}, fmt.Errorf("demo config: %w", err)
	}
	srv, err := server.New(ctx, cfg, so)
	if err != nil {
		return Result{}, err
	}
	if err := srv.Start(ctx); err != nil {
		return Result{}, err
	}
	d := &demo{w: w, c: client.New(srv.URL(), "", nil), o: o, start: time.Now(), emu: emu}
	d.say("Berth demo: an embedded server at %s with %s (shape-a, shape-b, shape-c, bins).", srv.URL(), where)
	res, runErr := d.run(ctx)
	cleanErr := d.cleanUp(context.WithoutCancel(ctx))
	stopErr := srv.Stop()
	return res, errors.Join(runErr, cleanErr, stopErr)
}

type demo struct {
	// emu is the EMR emulator the pools run on, nil for local pools.
	emu   *emulator.Server
	w     io.Writer
	c     *client.Client
	o     Options
	start time.Time
	mu    sync.Mutex
}

func (d *demo) say(format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fmt.Fprintf(d.w, "[%5.1fs] %s\n", time.Since(d.start).Seconds(), fmt.Sprintf(format, args...))
}

func (d *demo) run(ctx context.Context) (Result, error) {
	if err := d.serialPhases(ctx); err != nil {
		return Result{}, err
	}
	maxBins, err := d.parallelBins(ctx)
	if err != nil {
		return Result{}, err
	}
	return d.summary(ctx, maxBins)
}

// step is a demo command: it prints and works for a while.
func (d *demo) step(name string) berth.Step {
	secs := fmt.Sprintf("%.1f", d.o.StepTime.Seconds())
	return berth.Step{Name: name, Args: []string{"sh", "-c", "echo \"$0 running as pid $$\"; sleep " + secs, name}}
}

// serialPhases is problem 1.
func (d *demo) serialPhases(ctx context.Context) error {
	d.say("Problem 1: eight serial phases on three cluster shapes; the shape-a cluster dies during phase 3.")
	pools := []string{"shape-a", "shape-a", "shape-a", "shape-a", "shape-b", "shape-b", "shape-c", "shape-c"}
	for i, pool := range pools {
		phase := i + 1
		job, _, err := d.c.Submit(ctx, berth.JobSpec{
			Pool:           pool,
			Name:           fmt.Sprintf("phase-%d", phase),
			Steps:          []berth.Step{d.step(fmt.Sprintf("phase-%d-extract", phase)), d.step(fmt.Sprintf("phase-%d-load", phase))},
			IdempotencyKey: fmt.Sprintf("demo/phases/%d", phase),
			Labels:         map[string]string{"dag_id": "demo", "task_id": fmt.Sprintf("phase_%d", phase)},
		})
		if err != nil {
			return fmt.Errorf("submit phase %d: %w", phase, err)
		}
		d.say("phase %d submitted to pool %s as %s", phase, pool, job.ID)
		if phase == 3 {
			if err := d.killMidway(ctx, job.ID); err != nil {
				return err
			}
		}
		job, err = d.wait(ctx, job.ID)
		if err != nil {
			return err
		}
		if job.State != berth.JobSucceeded {
			return fmt.Errorf("phase %d ended %s (%s)", phase, job.State, job.Reason)
		}
		d.say("phase %d succeeded on cluster %s after %d attempt(s)%s", phase, job.ClusterID, len(job.Attempts), lostNote(job))
	}
	return nil
}

func lostNote(j berth.Job) string {
	var lost []string
	for _, a := range j.Attempts {
		if a.Reason == berth.ReasonClusterLost {
			lost = append(lost, a.ClusterID)
		}
	}
	if len(lost) == 0 {
		return ""
	}
	return fmt.Sprintf(" — cluster %s was lost under it and Berth re-ran it by itself", strings.Join(lost, ", "))
}

// killMidway waits for the job's first step to run, then kills its
// cluster as a spot reclaim would.
func (d *demo) killMidway(ctx context.Context, id string) error {
	for {
		job, err := d.c.WaitJob(ctx, id, 200*time.Millisecond)
		if err != nil {
			return err
		}
		if a := job.CurrentAttempt(); a != nil && len(a.Steps) > 0 && a.Steps[0].State == berth.StepRunning {
			if d.emu != nil {
				return d.reclaim(ctx, a.ClusterID)
			}
			d.say("phase 3 is running on %s: killing that cluster (simulated spot reclaim)", a.ClusterID)
			c, err := d.c.Kill(ctx, a.ClusterID)
			if err != nil {
				return fmt.Errorf("kill %s: %w", a.ClusterID, err)
			}
			d.say("cluster %s is %s: %s", c.ID, c.State, c.Reason)
			return nil
		}
		if job.State.Terminal() {
			return fmt.Errorf("phase 3 ended before it could be interrupted")
		}
	}
}

// reclaim has the emulator take a cluster's spot instances back, as EC2
// would: its steps fail first, and EMR says why a little later.
func (d *demo) reclaim(ctx context.Context, clusterID string) error {
	c, err := d.c.Cluster(ctx, clusterID)
	if err != nil {
		return err
	}
	d.say("phase 3 is running on %s (EMR %s): the emulator reclaims its spot instances", clusterID, c.ProviderID)
	if err := d.emu.SpotLoss(c.ProviderID); err != nil {
		return fmt.Errorf("spot loss of %s: %w", c.ProviderID, err)
	}
	return nil
}

// startEmulator serves an EMR emulator on a loopback port, its step
// processes working under dir.
func startEmulator(dir string, log *slog.Logger) (*emulator.Server, error) {
	work := filepath.Join(dir, "emulator")
	if err := os.MkdirAll(work, 0o700); err != nil {
		return nil, err
	}
	return emulator.Listen("127.0.0.1:0", emulator.Options{
		BootTime: time.Second, BootstrapTime: 300 * time.Millisecond, TerminateTime: 300 * time.Millisecond,
		LogDelay: 200 * time.Millisecond, LossLag: time.Second, WorkDir: work, Log: log.With("component", "emulator"),
	})
}

func (d *demo) wait(ctx context.Context, id string) (berth.Job, error) {
	for {
		job, err := d.c.WaitJob(ctx, id, 30*time.Second)
		if err != nil || job.State.Terminal() {
			return job, err
		}
	}
}

// parallelBins is problem 2. It returns the most bins clusters seen at
// once.
func (d *demo) parallelBins(ctx context.Context) (int, error) {
	n := d.o.Bins
	d.say("Problem 2: one phase of %d parallel bins on pool bins (3 slots a cluster, up to 4 clusters).", n)
	ids := make([]string, 0, n)
	for b := range n {
		job, _, err := d.c.Submit(ctx, berth.JobSpec{
			Pool:           "bins",
			Name:           fmt.Sprintf("bin-%02d", b),
			Steps:          []berth.Step{d.step(fmt.Sprintf("bin-%02d", b))},
			IdempotencyKey: fmt.Sprintf("demo/bins/%d", b),
			Labels:         map[string]string{"dag_id": "demo", "task_id": "bins"},
		})
		if err != nil {
			return 0, fmt.Errorf("submit bin %d: %w", b, err)
		}
		ids = append(ids, job.ID)
	}
	d.say("%d bins queued", n)

	watchCtx, stopWatch := context.WithCancel(ctx)
	peak := make(chan int, 1)
	go func() { peak <- d.watchPool(watchCtx, "bins") }()
	for _, id := range ids {
		job, err := d.wait(ctx, id)
		if err != nil {
			stopWatch()
			return 0, err
		}
		if job.State != berth.JobSucceeded {
			stopWatch()
			return 0, fmt.Errorf("bin %s ended %s", job.Name, job.State)
		}
	}
	d.say("all %d bins succeeded; waiting for the idle clusters to be scaled in", n)
	err := d.until(ctx, 30*time.Second, func(ps berth.PoolStatus) bool {
		return ps.Clusters[berth.ClusterReady]+ps.Clusters[berth.ClusterStarting]+ps.Clusters[berth.ClusterDraining]+ps.Clusters[berth.ClusterTerminating] == 0
	})
	stopWatch()
	most := <-peak
	if err != nil {
		return most, err
	}
	d.say("pool bins scaled back in to 0 clusters")
	return most, nil
}

// watchPool reports the pool's scaling as it happens and returns the most
// live clusters seen.
func (d *demo) watchPool(ctx context.Context, pool string) int {
	last, most := "", 0
	for ctx.Err() == nil {
		ps, err := d.c.Pool(ctx, pool)
		if err == nil {
			live := ps.Clusters[berth.ClusterStarting] + ps.Clusters[berth.ClusterReady]
			most = max(most, live)
			line := fmt.Sprintf("pool %s: %d starting, %d ready, %d draining; %d queued, %d running",
				pool, ps.Clusters[berth.ClusterStarting], ps.Clusters[berth.ClusterReady], ps.Clusters[berth.ClusterDraining], ps.Queued, ps.Running)
			if line != last {
				d.say("%s", line)
				last = line
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
	return most
}

// until polls the pool status until cond holds or the wait runs out.
func (d *demo) until(ctx context.Context, wait time.Duration, cond func(berth.PoolStatus) bool) error {
	end := time.Now().Add(wait)
	for {
		ps, err := d.c.Pool(ctx, "bins")
		if err != nil {
			return err
		}
		if cond(ps) {
			return nil
		}
		if time.Now().After(end) {
			return fmt.Errorf("pool %s did not scale in within %s", ps.Name, wait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// summary prints what happened and returns it.
func (d *demo) summary(ctx context.Context, maxBins int) (Result, error) {
	res := Result{MaxBinClusters: maxBins}
	jobs, err := d.allJobs(ctx)
	if err != nil {
		return res, err
	}
	reasons := map[berth.Reason]int{}
	perCluster := map[string]int{}
	for _, j := range jobs {
		res.Jobs++
		if j.State == berth.JobSucceeded {
			res.Succeeded++
		}
		for _, a := range j.Attempts {
			res.Attempts++
			reasons[a.Reason]++
			perCluster[a.ClusterID]++
		}
	}
	clusters, err := d.c.Clusters(ctx, "", "")
	if err != nil {
		return res, err
	}
	var secs float64
	byPool := map[string]int{}
	for _, c := range clusters {
		res.ClustersStarted++
		byPool[c.Pool]++
		if c.State == berth.ClusterLost {
			res.LostClusters++
		}
		end := c.EndedAt
		if end.IsZero() {
			end = time.Now()
		}
		secs += end.Sub(c.CreatedAt).Seconds()
		res.Cost += c.Cost
	}
	reused := 0
	for _, n := range perCluster {
		if n > 1 {
			reused++
		}
	}
	d.say("Summary")
	fmt.Fprintf(d.w, "  jobs:      %d submitted, %d succeeded\n", res.Jobs, res.Succeeded)
	fmt.Fprintf(d.w, "  attempts:  %d (%s)\n", res.Attempts, reasonList(reasons))
	fmt.Fprintf(d.w, "  clusters:  %d started (%s), %d reused for more than one job, %d lost and replaced\n", res.ClustersStarted, poolList(byPool), reused, res.LostClusters)
	fmt.Fprintf(d.w, "  scaling:   pool bins grew from 0 to %d clusters with its backlog and shrank back to 0 when idle\n", maxBins)
	fmt.Fprintf(d.w, "  usage:     %.0f cluster-seconds, cost %.4f\n", secs, res.Cost)
	if res.Succeeded == res.Jobs {
		fmt.Fprintf(d.w, "  No job needed a person: every interrupted job was re-run by Berth on its own.\n")
	}
	return res, nil
}

func (d *demo) allJobs(ctx context.Context) ([]berth.Job, error) {
	var all []berth.Job
	cursor := ""
	for {
		jobs, next, err := d.c.Jobs(ctx, client.JobsQuery{Cursor: cursor, Limit: 1000})
		if err != nil {
			return nil, err
		}
		all = append(all, jobs...)
		if next == "" {
			return all, nil
		}
		cursor = next
	}
}

func reasonList(m map[berth.Reason]int) string {
	var parts []string
	for r, n := range m {
		parts = append(parts, fmt.Sprintf("%d %s", n, r))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

func poolList(m map[string]int) string {
	var parts []string
	for p, n := range m {
		parts = append(parts, fmt.Sprintf("%s %d", p, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// cleanUp terminates every live cluster and waits until they are gone, so
// the demo leaves no process behind.
func (d *demo) cleanUp(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := d.c.TerminateAll(ctx, 100*time.Millisecond); err != nil {
		return fmt.Errorf("clean-up: %w", err)
	}
	d.say("clean-up: every cluster terminated; nothing left running")
	return nil
}
