package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/client"
)

// labelFlag is a repeatable --label k=v.
type labelFlag map[string]string

func (l labelFlag) String() string { return labels(l) }

func (l labelFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", s)
	}
	l[k] = v
	return nil
}

// thenFlag is a repeatable --then POOL[:JOBS], one hint each; JOBS is 1
// when left out, the common case of one job following on another pool.
type thenFlag []berth.Hint

func (f *thenFlag) String() string {
	if f == nil {
		return ""
	}
	return hints(*f)
}

func (f *thenFlag) Set(s string) error {
	// Pool names have no ':' (see config), so the first one ends the pool.
	pool, jobs, hasJobs := strings.Cut(s, ":")
	if pool == "" {
		return fmt.Errorf("want POOL or POOL:JOBS, got %q", s)
	}
	h := berth.Hint{Pool: pool, Jobs: 1}
	if hasJobs {
		n, err := strconv.Atoi(jobs)
		if err != nil {
			return fmt.Errorf("want POOL or POOL:JOBS with JOBS a number, got %q", s)
		}
		h.Jobs = n
	}
	// The server checks the rest (the pool exists, JOBS in range), in the
	// words it uses for a job file's then.
	*f = append(*f, h)
	return nil
}

// durationFlag is a berth.Duration flag that remembers whether it was set.
type durationFlag struct {
	d   time.Duration
	set bool
}

func (f *durationFlag) String() string {
	if !f.set {
		return ""
	}
	return f.d.String()
}

func (f *durationFlag) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return fmt.Errorf("want a duration such as 90s or 2h, got %q", s)
	}
	f.d, f.set = d, true
	return nil
}

const submitHelp = `
Submit a job, from a JSON file of the API's job spec ("-" reads it from
stdin), or as one step running the command after "--" on a cluster of --pool.
The flags set the spec's fields, over the file's when both are given.

Prints the job's id (or the job with -o json). When an idempotency key
matches an existing job, that job is printed instead and a note goes to
stderr. With --wait, waits for the job to end as 'berth jobs wait' does and
exits 0 only if it succeeded.

examples:
  berth submit job.json
  berth submit --pool small --label dag_id=nightly -- spark-submit s3://bucket/phase3.py --bin 7
  berth submit --pool small --then spark:8 -- ./split.sh    # 8 jobs on spark follow
`

func runSubmit(ctx context.Context, e *env, args []string) error {
	fs := e.flags("submit", "submit [flags] FILE.json|-\n       berth submit --pool POOL [flags] -- COMMAND [ARG...]", submitHelp)
	e.clientFlags(fs)
	var (
		spec       berth.JobSpec
		lbls       = labelFlag{}
		then       thenFlag
		timeout    durationFlag
		resume     string
		wait       bool
		infraRetry int
	)
	fs.StringVar(&spec.Pool, "pool", "", "`pool` to run on")
	fs.StringVar(&spec.Name, "name", "", "job `name`")
	fs.IntVar(&spec.Priority, "priority", 0, "`priority`: higher runs first")
	fs.IntVar(&spec.Retries, "retries", 0, "retries after a step fails (`N`)")
	fs.IntVar(&infraRetry, "max-infra-retries", 0, "reruns after a cluster is lost (`N`; default the server's)")
	fs.StringVar(&spec.Affinity, "affinity", "", "affinity `key`: prefer the cluster that last ran it")
	fs.BoolVar(&spec.AffinityRequired, "affinity-required", false, "fail rather than run away from the affinity cluster")
	fs.StringVar(&spec.IdempotencyKey, "idempotency-key", "", "`key` that makes resubmission return the same job")
	fs.StringVar(&spec.ExecutionRoleArn, "execution-role-arn", "", "IAM role `ARN` the job's steps run as (EMR pools only)")
	fs.Var(lbls, "label", "label `key=value` (repeatable)")
	fs.Var(&then, "then", "work that follows the job: `POOL[:JOBS]` jobs on POOL, 1 if not given (repeatable; replaces a file's then)")
	fs.Var(&timeout, "timeout", "the job's time limit (`duration`, e.g. 2h)")
	fs.StringVar(&resume, "resume", "", "`where` a rerun after a lost cluster starts: from_start or unfinished")
	fs.BoolVar(&wait, "wait", false, "wait for the job to end; exit 0 only if it succeeded")
	pos, command, dash, err := fs.parse(args)
	if err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	switch {
	case dash && len(pos) > 0:
		return fs.usageErr("give a FILE or a command after --, not both")
	case dash && len(command) == 0:
		return fs.usageErr("no command after --")
	case !dash && len(pos) != 1:
		return fs.usageErr("want one FILE (or - for stdin), or a command after --")
	}
	if !dash {
		fileSpec, err := e.readSpec(pos[0])
		if err != nil {
			return err
		}
		// The flags given override the file.
		flagSpec := spec
		spec = fileSpec
		overlay(&spec, flagSpec, set)
	} else {
		spec.Steps = []berth.Step{{Name: filepath.Base(command[0]), Args: command}}
	}
	if set["label"] {
		if spec.Labels == nil {
			spec.Labels = map[string]string{}
		}
		for k, v := range lbls {
			spec.Labels[k] = v
		}
	}
	if set["then"] {
		spec.Then = then
	}
	if timeout.set {
		spec.Timeout = berth.Duration(timeout.d)
	}
	if set["resume"] {
		spec.Resume = berth.Resume(resume)
	}
	if set["max-infra-retries"] {
		spec.MaxInfraRetries = &infraRetry
	}
	if dash && spec.Pool == "" {
		return fs.usageErr("--pool is required with a command")
	}

	c := e.client()
	job, created, err := c.Submit(ctx, spec)
	if err != nil {
		return err
	}
	if !created {
		fmt.Fprintf(e.stderr, "berth: idempotency key %q matched the existing job %s\n", job.IdempotencyKey, job.ID)
	}
	if !wait {
		if e.output == "json" {
			return printJSON(e.stdout, job)
		}
		_, err := fmt.Fprintln(e.stdout, job.ID)
		return err
	}
	if e.output == "table" {
		fmt.Fprintln(e.stdout, job.ID)
	}
	return e.waitJob(ctx, c, job.ID, 0)
}

// overlay copies the fields of from that a flag set onto to.
func overlay(to *berth.JobSpec, from berth.JobSpec, set map[string]bool) {
	if set["pool"] {
		to.Pool = from.Pool
	}
	if set["name"] {
		to.Name = from.Name
	}
	if set["priority"] {
		to.Priority = from.Priority
	}
	if set["retries"] {
		to.Retries = from.Retries
	}
	if set["affinity"] {
		to.Affinity = from.Affinity
	}
	if set["affinity-required"] {
		to.AffinityRequired = from.AffinityRequired
	}
	if set["idempotency-key"] {
		to.IdempotencyKey = from.IdempotencyKey
	}
	if set["execution-role-arn"] {
		to.ExecutionRoleArn = from.ExecutionRoleArn
	}
}

// readSpec reads a job spec from a file, or stdin for "-". Unknown fields
// are refused here already, with the file's name in the message.
func (e *env) readSpec(name string) (berth.JobSpec, error) {
	var r io.Reader = e.stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return berth.JobSpec{}, fmt.Errorf("read job spec: %w", err)
		}
		defer f.Close()
		r = f
	} else {
		name = "stdin"
	}
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var spec berth.JobSpec
	if err := dec.Decode(&spec); err != nil {
		return spec, fmt.Errorf("read job spec from %s: %w", name, err)
	}
	if dec.More() {
		return spec, fmt.Errorf("read job spec from %s: more than one JSON value", name)
	}
	return spec, nil
}

func runJobs(ctx context.Context, e *env, args []string) error {
	return e.runGroup(ctx, "jobs", "Look at and act on jobs.", []command{
		{"ls", "list jobs, newest first", runJobsList},
		{"get", "show a job with its steps and attempts", runJobGet},
		{"wait", "wait for a job to end; exit 0 if it succeeded, 1 if not", runJobWait},
		{"cancel", "cancel a job", runJobCancel},
		{"logs", "print a step's output, or where it is", runJobLogs},
		{"events", "print a job's history", runJobEvents},
	}, args)
}

func runJobsList(ctx context.Context, e *env, args []string) error {
	fs := e.flags("jobs ls", "jobs ls [flags]", "List jobs, newest first.")
	e.clientFlags(fs)
	var q client.JobsQuery
	var state string
	lbls := labelFlag{}
	fs.StringVar(&state, "state", "", "only jobs in this `state`: "+joinStates(berth.JobStates))
	fs.StringVar(&q.Pool, "pool", "", "only jobs of this `pool`")
	fs.Var(lbls, "label", "only jobs with this label `key=value` (repeatable)")
	fs.IntVar(&q.Limit, "limit", 0, "at most `N` jobs (1..1000; default the server's)")
	fs.StringVar(&q.Cursor, "cursor", "", "continue a listing from this `cursor`")
	pos, err := fs.parseAll(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fs.usageErr("no arguments expected, got %q", pos[0])
	}
	q.State, q.Labels = berth.JobState(state), lbls
	jobs, next, err := e.client().Jobs(ctx, q)
	if err != nil {
		return err
	}
	if e.output == "json" {
		return printJSON(e.stdout, struct {
			Jobs       []berth.Job `json:"jobs"`
			NextCursor string      `json:"next_cursor"`
		}{orEmpty(jobs), next})
	}
	if err := e.jobTable(jobs); err != nil {
		return err
	}
	if next != "" {
		fmt.Fprintf(e.stderr, "more: berth jobs ls --cursor %s\n", next)
	}
	return nil
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func joinStates[S ~string](states []S) string {
	var out []string
	for _, s := range states {
		out = append(out, string(s))
	}
	return strings.Join(out, ", ")
}

func (e *env) jobTable(jobs []berth.Job) error {
	now := e.clock.Now()
	t := newTable(e.stdout, "ID", "POOL", "NAME", "STATE", "WAIT/ETA", "ATTEMPTS", "CLUSTER", "AGE", "DURATION", "COST")
	for _, j := range jobs {
		t.row(j.ID, j.Pool, j.Name, string(j.State), waitETA(now, j), strconv.Itoa(len(j.Attempts)), j.ClusterID,
			since(now, j.CreatedAt), span(now, j.StartedAt, j.EndedAt), money(j.Cost))
	}
	return t.flush()
}

// waitETA is a queued job's reason to wait and its estimated start, short
// enough for a column: "cluster_starting in 2m0s".
func waitETA(now time.Time, j berth.Job) string {
	s := string(j.WaitReason)
	if !j.ETA.IsZero() {
		s += " " + relative(now, j.ETA)
	}
	return s
}

// oneID parses a command that takes one id.
func (e *env) oneID(fs *flagSet, args []string, what string) (string, error) {
	pos, err := fs.parseAll(args)
	if err != nil {
		return "", err
	}
	if len(pos) != 1 {
		return "", fs.usageErr("want one %s, got %d arguments", what, len(pos))
	}
	return pos[0], nil
}

func runJobGet(ctx context.Context, e *env, args []string) error {
	fs := e.flags("jobs get", "jobs get [flags] ID", "Show a job with its steps and attempts.")
	e.clientFlags(fs)
	id, err := e.oneID(fs, args, "job id")
	if err != nil {
		return err
	}
	j, err := e.client().Job(ctx, id)
	if err != nil {
		return err
	}
	if e.output == "json" {
		return printJSON(e.stdout, j)
	}
	return e.jobDetail(j)
}

func (e *env) jobDetail(j berth.Job) error {
	now := e.clock.Now()
	kv := newTable(e.stdout)
	field := func(k, v string) { kv.row(k+":", v) }
	field("ID", j.ID)
	field("Pool", j.Pool)
	field("Name", j.Name)
	state := string(j.State)
	if j.Reason != "" {
		state += " (" + string(j.Reason) + ")"
	}
	if j.CancelRequested && !j.State.Terminal() {
		state += ", cancel requested"
	}
	field("State", state)
	if j.WaitReason != "" {
		field("Waiting", string(j.WaitReason)+": "+j.WaitMessage)
		eta := ""
		if !j.ETA.IsZero() {
			eta = j.ETA.UTC().Format(time.RFC3339) + " (" + relative(now, j.ETA) + ")"
		}
		field("ETA", eta)
	}
	field("Cluster", j.ClusterID)
	field("Priority", strconv.Itoa(j.Priority))
	field("Retries", fmt.Sprintf("%d of %d used; infrastructure %d of %d", j.UserFailures, j.Retries, j.InfraFailures, j.MaxInfraRetries))
	field("Resume", string(j.Resume))
	if j.Timeout != 0 {
		field("Timeout", j.Timeout.Std().String())
	}
	if j.Affinity != "" {
		a := j.Affinity
		if j.AffinityRequired {
			a += " (required)"
		}
		field("Affinity", a)
	}
	if j.ExecutionRoleArn != "" {
		field("Execution role", j.ExecutionRoleArn)
	}
	if len(j.Then) > 0 {
		field("Then", hints(j.Then))
	}
	field("Labels", labels(j.Labels))
	field("Idempotency key", j.IdempotencyKey)
	field("Created", stamp(now, j.CreatedAt))
	field("Started", stamp(now, j.StartedAt))
	field("Ended", stamp(now, j.EndedAt))
	if now.Before(j.NotBefore) {
		field("Not before", stamp(now, j.NotBefore))
	}
	field("Cost", money(j.Cost))
	if err := kv.flush(); err != nil {
		return err
	}

	fmt.Fprintln(e.stdout, "\nSteps:")
	t := newTable(e.stdout, "  #", "NAME", "STATE", "COMMAND")
	for i, s := range j.Steps {
		cmd := argv(s.Args)
		if s.Jar != "" {
			cmd = strings.TrimSpace(s.Jar + " " + s.MainClass + " " + cmd)
		}
		t.row("  "+strconv.Itoa(i), s.Name, string(s.State), cmd)
	}
	if err := t.flush(); err != nil {
		return err
	}

	fmt.Fprintln(e.stdout, "\nAttempts:")
	if len(j.Attempts) == 0 {
		fmt.Fprintln(e.stdout, "  none yet")
		return nil
	}
	t = newTable(e.stdout, "  N", "CLUSTER", "STATE", "REASON", "STEPS", "STARTED", "DURATION", "COST")
	for _, a := range j.Attempts {
		done := 0
		for _, s := range a.Steps {
			if s.State == berth.StepSucceeded {
				done++
			}
		}
		t.row("  "+strconv.Itoa(a.N), a.ClusterID, string(a.State), string(a.Reason),
			fmt.Sprintf("%d/%d", done, len(a.Steps)), since(now, a.StartedAt)+" ago", span(now, a.StartedAt, a.EndedAt), money(a.Cost))
	}
	return t.flush()
}

const waitHelp = `
Wait for a job to end. Exits 0 when it succeeded and 1 when it failed, was
cancelled, or --timeout ran out, so scripts can rely on it.

On a terminal it shows the job's progress (state, attempt, cluster, step) on
one line; otherwise it prints a line each time that changes.
`

func runJobWait(ctx context.Context, e *env, args []string) error {
	fs := e.flags("jobs wait", "jobs wait [flags] ID", waitHelp)
	e.clientFlags(fs)
	var timeout durationFlag
	fs.Var(&timeout, "timeout", "give up after this `duration` (default: never)")
	id, err := e.oneID(fs, args, "job id")
	if err != nil {
		return err
	}
	return e.waitJob(ctx, e.client(), id, timeout.d)
}

// Long-poll lengths: the API answers a long poll when the job ends, so a
// poll's length only bounds how stale the progress shown can get.
const (
	terminalPoll = 2 * time.Second
	logPoll      = 10 * time.Second
)

// waitJob waits for a job to end, showing its progress, and returns nil
// only when it succeeded.
func (e *env) waitJob(ctx context.Context, c *client.Client, id string, timeout time.Duration) error {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	poll := logPoll
	if e.terminal {
		poll = terminalPoll
	}
	show := e.output == "table"
	j, err := c.Job(ctx, id)
	var last string
	for err == nil {
		key := progress(j)
		switch {
		case !show:
		case e.terminal:
			fmt.Fprintf(e.stdout, "\r\033[K%s%s", key, elapsed(e.clock.Now(), j))
		case key != last:
			fmt.Fprintln(e.stdout, key)
		}
		last = key
		if j.State.Terminal() {
			break
		}
		j, err = c.WaitJob(ctx, id, poll)
	}
	if show && e.terminal && last != "" {
		fmt.Fprintln(e.stdout)
	}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && timeout > 0 && ctx.Err() != nil {
			return fmt.Errorf("job %s has not ended after %s", id, timeout)
		}
		return err
	}
	if e.output == "json" {
		if err := printJSON(e.stdout, j); err != nil {
			return err
		}
	}
	if j.State != berth.JobSucceeded {
		msg := fmt.Sprintf("job %s %s", j.ID, j.State)
		if j.Reason != "" && string(j.Reason) != string(j.State) {
			msg += " (" + string(j.Reason) + ")"
		}
		return errors.New(msg)
	}
	return nil
}

// progress is a one-line account of a job: what changes between two lines
// of jobs wait.
func progress(j berth.Job) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", j.ID, j.State)
	if j.Reason != "" && string(j.Reason) != string(j.State) {
		fmt.Fprintf(&b, " (%s)", j.Reason)
	}
	if n := len(j.Attempts); n > 0 {
		fmt.Fprintf(&b, "  attempt %d", j.Attempts[n-1].N)
	}
	if j.ClusterID != "" {
		fmt.Fprintf(&b, "  cluster %s", j.ClusterID)
	}
	if a := j.CurrentAttempt(); a != nil {
		for _, s := range a.Steps {
			if !s.State.Terminal() {
				name := ""
				if s.Index >= 0 && s.Index < len(j.Steps) && j.Steps[s.Index].Name != "" {
					name = " " + j.Steps[s.Index].Name
				}
				fmt.Fprintf(&b, "  step %d/%d%s %s", s.Index+1, len(j.Steps), name, s.State)
				break
			}
		}
	}
	if j.State.Terminal() && !j.StartedAt.IsZero() && !j.EndedAt.IsZero() {
		fmt.Fprintf(&b, "  took %s  cost %s", short(j.EndedAt.Sub(j.StartedAt)), money(j.Cost))
	}
	return b.String()
}

// elapsed is the running time shown after the progress on a terminal.
func elapsed(now time.Time, j berth.Job) string {
	if j.State.Terminal() {
		return ""
	}
	if j.StartedAt.IsZero() {
		return "  waiting " + short(now.Sub(j.CreatedAt))
	}
	return "  running " + short(now.Sub(j.StartedAt))
}

func runJobCancel(ctx context.Context, e *env, args []string) error {
	fs := e.flags("jobs cancel", "jobs cancel [flags] ID", "Cancel a job: a queued job is removed, a running job's step is cancelled.")
	e.clientFlags(fs)
	id, err := e.oneID(fs, args, "job id")
	if err != nil {
		return err
	}
	j, err := e.client().Cancel(ctx, id)
	if err != nil {
		return err
	}
	if e.output == "json" {
		return printJSON(e.stdout, j)
	}
	if j.State.Terminal() {
		fmt.Fprintf(e.stdout, "%s %s\n", j.ID, j.State)
	} else {
		fmt.Fprintf(e.stdout, "%s cancel requested\n", j.ID)
	}
	return nil
}

const logsHelp = `
Print one step's output of one attempt of a job: the step's stdout to
stdout, then its stderr to stderr. Where the provider keeps logs elsewhere
(EMR: an S3 prefix) it prints their location.
`

func runJobLogs(ctx context.Context, e *env, args []string) error {
	fs := e.flags("jobs logs", "jobs logs [flags] ID", logsHelp)
	e.clientFlags(fs)
	var attempt, step int
	fs.IntVar(&attempt, "attempt", 0, "attempt `N` (default the latest)")
	fs.IntVar(&step, "step", 0, "step index `M`, from 0")
	id, err := e.oneID(fs, args, "job id")
	if err != nil {
		return err
	}
	if attempt < 0 || step < 0 {
		return fs.usageErr("--attempt and --step cannot be negative")
	}
	l, err := e.client().Logs(ctx, id, attempt, step)
	if err != nil {
		return err
	}
	if e.output == "json" {
		return printJSON(e.stdout, l)
	}
	if l.Location != "" {
		fmt.Fprintf(e.stdout, "logs: %s\n", l.Location)
	}
	if _, err := io.WriteString(e.stdout, l.Stdout); err != nil {
		return err
	}
	_, err = io.WriteString(e.stderr, l.Stderr)
	return err
}

func runJobEvents(ctx context.Context, e *env, args []string) error {
	fs := e.flags("jobs events", "jobs events [flags] ID", "Print a job's history, oldest first.")
	e.clientFlags(fs)
	id, err := e.oneID(fs, args, "job id")
	if err != nil {
		return err
	}
	events, err := e.client().Events(ctx, id)
	if err != nil {
		return err
	}
	if e.output == "json" {
		return printJSON(e.stdout, struct {
			Events []berth.Event `json:"events"`
		}{orEmpty(events)})
	}
	return e.eventTable(events, "")
}

func (e *env) eventTable(events []berth.Event, indent string) error {
	t := newTable(e.stdout, indent+"AT", "KIND", "JOB", "CLUSTER", "MESSAGE")
	for _, ev := range events {
		t.row(indent+ev.At.UTC().Format(time.RFC3339), ev.Kind, ev.JobID, ev.ClusterID, ev.Message)
	}
	return t.flush()
}
