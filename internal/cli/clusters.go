package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/berthhq/berth/internal/berth"
)

func runClusters(ctx context.Context, e *env, args []string) error {
	return e.runGroup(ctx, "clusters", "Look at and act on clusters.", []command{
		{"ls", "list clusters, oldest first", runClustersList},
		{"get", "show a cluster with its attempts and events", runClusterGet},
		{"drain", "take no new jobs; terminate once the running ones end", clusterAction("drain", "Drain a cluster: it takes no new job and is terminated when its running jobs end.")},
		{"terminate", "terminate a cluster now; its jobs run again elsewhere", clusterAction("terminate", "Terminate a cluster now. Its running jobs are requeued.")},
		{"kill", "make a cluster die as if its capacity were reclaimed (fault injection)", clusterAction("kill", "Kill a cluster as if spot capacity were reclaimed, to see Berth recover.\nOnly providers that can inject faults (local, sim) support it.")},
	}, args)
}

func runClustersList(ctx context.Context, e *env, args []string) error {
	fs := e.flags("clusters ls", "clusters ls [flags]", "List clusters, oldest first.")
	e.clientFlags(fs)
	var pool, state string
	fs.StringVar(&pool, "pool", "", "only clusters of this `pool`")
	fs.StringVar(&state, "state", "", "only clusters in this `state`: "+joinStates(berth.ClusterStates))
	pos, err := fs.parseAll(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fs.usageErr("no arguments expected, got %q", pos[0])
	}
	cls, err := e.client().Clusters(ctx, pool, berth.ClusterState(state))
	if err != nil {
		return err
	}
	if e.output == "json" {
		return printJSON(e.stdout, struct {
			Clusters []berth.Cluster `json:"clusters"`
		}{orEmpty(cls)})
	}
	return e.clusterTable(cls)
}

func (e *env) clusterTable(cls []berth.Cluster) error {
	now := e.clock.Now()
	t := newTable(e.stdout, "ID", "POOL", "STATE", "RUNNING/SLOTS", "AGE", "COST", "REASON")
	for _, c := range cls {
		t.row(c.ID, c.Pool, string(c.State), fmt.Sprintf("%d/%d", c.Running, c.Slots),
			short(c.Lifetime(now)), money(c.Cost), c.Reason)
	}
	return t.flush()
}

func runClusterGet(ctx context.Context, e *env, args []string) error {
	fs := e.flags("clusters get", "clusters get [flags] ID", "Show a cluster with the attempts that ran on it and its history.")
	e.clientFlags(fs)
	id, err := e.oneID(fs, args, "cluster id")
	if err != nil {
		return err
	}
	d, err := e.client().Cluster(ctx, id)
	if err != nil {
		return err
	}
	if e.output == "json" {
		d.Attempts, d.Events = orEmpty(d.Attempts), orEmpty(d.Events)
		return printJSON(e.stdout, d)
	}
	now := e.clock.Now()
	kv := newTable(e.stdout)
	field := func(k, v string) { kv.row(k+":", v) }
	field("ID", d.ID)
	field("Pool", d.Pool)
	state := string(d.State)
	if d.Fallback {
		state += " (fallback spec)"
	}
	field("State", state)
	field("Provider ID", d.ProviderID)
	field("Running", fmt.Sprintf("%d of %d slots", d.Running, d.Slots))
	field("Created", stamp(now, d.CreatedAt))
	field("Ready", stamp(now, d.ReadyAt))
	if d.Running == 0 {
		field("Idle since", stamp(now, d.IdleSince))
	}
	field("Ended", stamp(now, d.EndedAt))
	reason := d.Reason
	if d.Capacity {
		reason += " (capacity)"
	}
	field("Reason", reason)
	field("Price", price(d.PricePerHour))
	field("Cost", money(d.Cost))
	if err := kv.flush(); err != nil {
		return err
	}

	fmt.Fprintln(e.stdout, "\nAttempts:")
	if len(d.Attempts) == 0 {
		fmt.Fprintln(e.stdout, "  none")
	} else {
		t := newTable(e.stdout, "  JOB", "N", "STATE", "REASON", "STARTED", "DURATION", "COST")
		for _, a := range d.Attempts {
			t.row("  "+a.JobID, strconv.Itoa(a.N), string(a.State), string(a.Reason),
				since(now, a.StartedAt)+" ago", span(now, a.StartedAt, a.EndedAt), money(a.Cost))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}

	fmt.Fprintln(e.stdout, "\nEvents:")
	if len(d.Events) == 0 {
		fmt.Fprintln(e.stdout, "  none")
		return nil
	}
	return e.eventTable(d.Events, "  ")
}

// clusterAction is drain, terminate or kill: one id in, the cluster out.
func clusterAction(action, help string) func(context.Context, *env, []string) error {
	return func(ctx context.Context, e *env, args []string) error {
		fs := e.flags("clusters "+action, "clusters "+action+" [flags] ID", help)
		e.clientFlags(fs)
		id, err := e.oneID(fs, args, "cluster id")
		if err != nil {
			return err
		}
		c := e.client()
		do := map[string]func(context.Context, string) (berth.Cluster, error){
			"drain": c.Drain, "terminate": c.Terminate, "kill": c.Kill,
		}[action]
		cl, err := do(ctx, id)
		if err != nil {
			return err
		}
		if e.output == "json" {
			return printJSON(e.stdout, cl)
		}
		_, err = fmt.Fprintf(e.stdout, "%s %s\n", cl.ID, cl.State)
		return err
	}
}

func runPools(ctx context.Context, e *env, args []string) error {
	return e.runGroup(ctx, "pools", "Look at pools, and unblock them.", []command{
		{"ls", "list pools with their live counts", runPoolsList},
		{"get", "show a pool", runPoolGet},
		{"unblock", "let a pool blocked by a permanent provider failure start clusters again", runPoolUnblock},
	}, args)
}

func runPoolsList(ctx context.Context, e *env, args []string) error {
	fs := e.flags("pools ls", "pools ls [flags]", "List pools with their clusters by state, queued and running jobs and free slots.")
	e.clientFlags(fs)
	pos, err := fs.parseAll(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fs.usageErr("no arguments expected, got %q", pos[0])
	}
	pools, err := e.client().Pools(ctx)
	if err != nil {
		return err
	}
	if e.output == "json" {
		return printJSON(e.stdout, struct {
			Pools []berth.PoolStatus `json:"pools"`
		}{orEmpty(pools)})
	}
	now := e.clock.Now()
	t := newTable(e.stdout, "NAME", "PROVIDER", "STARTING", "READY", "DRAINING", "QUEUED", "RUNNING", "FREE", "MIN/MAX", "FALLBACK", "BLOCKED")
	for _, p := range pools {
		n := func(s berth.ClusterState) string { return strconv.Itoa(p.Clusters[s]) }
		blocked := ""
		if p.Blocked {
			blocked = fmt.Sprintf("%s (for %s)", clip(p.BlockedReason, 60), since(now, p.BlockedAt))
		}
		t.row(p.Name, p.Provider, n(berth.ClusterStarting), n(berth.ClusterReady), n(berth.ClusterDraining),
			strconv.Itoa(p.Queued), strconv.Itoa(p.Running), strconv.Itoa(p.FreeSlots),
			fmt.Sprintf("%d/%d", p.MinClusters, p.MaxClusters), fallback(p), blocked)
	}
	return t.flush()
}

// fallback says whether a pool has a fallback spec and whether it is in
// force.
func fallback(p berth.PoolStatus) string {
	switch {
	case p.Fallback == nil:
		return ""
	case p.FallbackActive:
		return "active"
	default:
		return "standby"
	}
}

func runPoolGet(ctx context.Context, e *env, args []string) error {
	fs := e.flags("pools get", "pools get [flags] NAME", "Show a pool: its policy and live counts.")
	e.clientFlags(fs)
	name, err := e.oneID(fs, args, "pool name")
	if err != nil {
		return err
	}
	p, err := e.client().Pool(ctx, name)
	if err != nil {
		return err
	}
	if e.output == "json" {
		return printJSON(e.stdout, p)
	}
	kv := newTable(e.stdout)
	field := func(k, v string) { kv.row(k+":", v) }
	field("Name", p.Name)
	field("Provider", p.Provider)
	field("Slots", strconv.Itoa(p.Slots))
	field("Min/max clusters", fmt.Sprintf("%d/%d", p.MinClusters, p.MaxClusters))
	dur := func(d berth.Duration) string {
		if d == 0 {
			return ""
		}
		return d.Std().String()
	}
	if p.IdleTimeoutAuto {
		field("Idle timeout", "auto")
	} else {
		field("Idle timeout", dur(p.IdleTimeout))
	}
	field("Boot timeout", dur(p.BootTimeout))
	field("Max lifetime", dur(p.MaxLifetime))
	field("Price", price(p.PricePerHour))
	fb := fallback(p)
	if p.Fallback != nil {
		fb += fmt.Sprintf(" (after %d capacity failures)", p.Fallback.AfterFailures)
	}
	field("Fallback", fb)
	blocked := "no"
	if p.Blocked {
		blocked = fmt.Sprintf("%s (since %s, %s ago)", p.BlockedReason, p.BlockedAt.UTC().Format(time.RFC3339), since(e.clock.Now(), p.BlockedAt))
	}
	field("Blocked", blocked)
	if len(p.Strays) > 0 {
		field("Strays", fmt.Sprintf("%s (started by this installation, unknown to Berth)", strings.Join(p.Strays, ", ")))
	}
	var counts []string
	for _, s := range berth.ClusterStates {
		if n := p.Clusters[s]; n > 0 {
			counts = append(counts, fmt.Sprintf("%d %s", n, s))
		}
	}
	field("Clusters", strings.Join(counts, ", "))
	field("Queued", strconv.Itoa(p.Queued))
	field("Running", strconv.Itoa(p.Running))
	field("Free slots", strconv.Itoa(p.FreeSlots))
	return kv.flush()
}

func runPoolUnblock(ctx context.Context, e *env, args []string) error {
	fs := e.flags("pools unblock", "pools unblock [flags] NAME",
		"Unblock a pool: a permanent provider failure (a bad bootstrap, a validation error,\naccess denied) blocks a pool so that it starts no more clusters. Fix the cause,\nthen unblock it. A pool that is not blocked is left as it is.")
	e.clientFlags(fs)
	name, err := e.oneID(fs, args, "pool name")
	if err != nil {
		return err
	}
	p, err := e.client().Unblock(ctx, name)
	if err != nil {
		return err
	}
	if e.output == "json" {
		return printJSON(e.stdout, p)
	}
	_, err = fmt.Fprintf(e.stdout, "%s unblocked\n", p.Name)
	return err
}
