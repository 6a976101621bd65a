package local_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/clock"
	"github.com/berthhq/berth/internal/provider"
	"github.com/berthhq/berth/internal/provider/local"
	"github.com/berthhq/berth/internal/provider/providertest"
)

const deadline = 20 * time.Second

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func newProvider(t *testing.T, opts local.Options) *local.Provider {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.Log == nil {
		opts.Log = testLogger(t)
	}
	p, err := local.New(opts)
	if err != nil {
		t.Fatalf("local.New: %v", err)
	}
	return p
}

func sh(script string, args ...string) berth.Step {
	return berth.Step{Args: append([]string{"sh", "-c", script, "sh"}, args...)}
}

func TestConformance(t *testing.T) {
	var mu sync.Mutex
	dirs := map[provider.Provider]string{}
	open := func(t *testing.T, dir string) provider.Provider {
		p := newProvider(t, local.Options{Dir: dir, BootTime: 300 * time.Millisecond, PollInterval: 50 * time.Millisecond})
		mu.Lock()
		defer mu.Unlock()
		dirs[p] = dir
		return p
	}
	providertest.Run(t, providertest.Harness{
		New: func(t *testing.T) provider.Provider { return open(t, t.TempDir()) },
		Reopen: func(t *testing.T, p provider.Provider) provider.Provider {
			mu.Lock()
			dir := dirs[p]
			mu.Unlock()
			return open(t, dir)
		},
		Success:     sh("echo out; echo err >&2; exit 0"),
		Failure:     sh("echo failing >&2; exit 3"),
		LongRunning: berth.Step{Args: []string{"sleep", "600"}},
		Unrunnable:  berth.Step{Jar: "s3://bucket/job.jar", MainClass: "Main", Args: []string{"x"}},
		Deadline:    deadline,
	})
}

// readyCluster returns a provider whose clusters are ready at once, and one
// such cluster.
func readyCluster(t *testing.T) (*local.Provider, string) {
	t.Helper()
	p := newProvider(t, local.Options{})
	return p, providertest.CreateReady(t, p, deadline)
}

func submit(t *testing.T, p provider.Provider, cluster, name string, step berth.Step) string {
	t.Helper()
	id, err := p.SubmitStep(context.Background(), cluster, provider.StepRequest{Name: name, Step: step})
	if err != nil {
		t.Fatalf("SubmitStep(%q): %v", name, err)
	}
	return id
}

func TestStepOutcome(t *testing.T) {
	t.Parallel()
	missingDir := filepath.Join(t.TempDir(), "missing")
	tests := []struct {
		name        string
		step        berth.Step
		state       berth.StepState
		code        int // -1: no exit code
		message     string
		stdout      string
		stderrHas   string
		messageHint string
	}{
		{name: "success", step: sh("echo out; echo err >&2"), state: berth.StepSucceeded, code: 0, stdout: "out\n", stderrHas: "err"},
		{name: "failure", step: sh("echo partial; exit 3"), state: berth.StepFailed, code: 3, message: "exited with code 3", stdout: "partial\n"},
		{name: "missing executable", step: berth.Step{Args: []string{"berth-no-such-program", "x"}},
			state: berth.StepFailed, code: 127, message: `command not found: "berth-no-such-program"`, stderrHas: "berth-no-such-program"},
		{name: "killed by a signal", step: sh("kill -9 $$"), state: berth.StepFailed, code: 128 + 9, message: "exited with code 137"},
		{name: "shell builtin is not run in the wrapper", step: berth.Step{Args: []string{"exit", "0"}},
			state: berth.StepFailed, code: 127},
		{name: "missing working directory", step: berth.Step{Args: []string{"true"}, Dir: missingDir},
			state: berth.StepFailed, code: -1, message: "could not start"},
	}
	p, cluster := readyCluster(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			id := submit(t, p, cluster, providertest.NewStepName(), tt.step)
			s := providertest.WaitStep(t, p, cluster, id, deadline, "ended", providertest.Terminal)
			if s.State != tt.state {
				t.Fatalf("step ended %s, want %s", providertest.Format(s), tt.state)
			}
			switch {
			case tt.code < 0 && s.ExitCode != nil:
				t.Errorf("exit code %d, want none", *s.ExitCode)
			case tt.code >= 0 && (s.ExitCode == nil || *s.ExitCode != tt.code):
				t.Errorf("step %s, want exit code %d", providertest.Format(s), tt.code)
			}
			if !strings.Contains(s.Message, tt.message) {
				t.Errorf("message %q, want it to contain %q", s.Message, tt.message)
			}
			if s.StartedAt.IsZero() || s.EndedAt.IsZero() || s.EndedAt.Before(s.StartedAt) {
				t.Errorf("started %v, ended %v", s.StartedAt, s.EndedAt)
			}
			logs, err := p.StepLogs(context.Background(), cluster, id)
			if err != nil {
				t.Fatalf("StepLogs: %v", err)
			}
			if tt.stdout != "" && logs.Stdout != tt.stdout {
				t.Errorf("stdout %q, want %q", logs.Stdout, tt.stdout)
			}
			if !strings.Contains(logs.Stderr, tt.stderrHas) {
				t.Errorf("stderr %q, want it to contain %q", logs.Stderr, tt.stderrHas)
			}
			if fi, err := os.Stat(logs.Location); err != nil || !fi.IsDir() {
				t.Errorf("log location %q is not a directory: %v", logs.Location, err)
			}
		})
	}
}

func TestEnvAndDir(t *testing.T) {
	t.Setenv("BERTH_LOCAL_TEST_SERVER", "from server")
	t.Setenv("BERTH_LOCAL_TEST_OVERRIDE", "server value")
	dir := t.TempDir()
	p := newProvider(t, local.Options{Dir: dir})
	cluster := providertest.CreateReady(t, p, deadline)
	work := t.TempDir()
	script := `printf '%s|%s|%s|%s\n' "$BERTH_LOCAL_TEST_SERVER" "$BERTH_LOCAL_TEST_OVERRIDE" "$BERTH_LOCAL_TEST_STEP" "$(pwd -P)"`
	tests := []struct {
		name    string
		dir     string
		wantDir func(id string) string
	}{
		{"given dir", work, func(string) string { return work }},
		// Apart from the step's records, which are not to be written by
		// the step.
		{"a work dir of its own by default", "", func(id string) string { return filepath.Join(dir, "workdirs", cluster, id) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			step := sh(script)
			step.Env = map[string]string{"BERTH_LOCAL_TEST_STEP": "from step", "BERTH_LOCAL_TEST_OVERRIDE": "step value"}
			step.Dir = tt.dir
			id := submit(t, p, cluster, providertest.NewStepName(), step)
			s := providertest.WaitStep(t, p, cluster, id, deadline, "ended", providertest.Terminal)
			if s.State != berth.StepSucceeded {
				t.Fatalf("step ended %s", providertest.Format(s))
			}
			logs, err := p.StepLogs(context.Background(), cluster, id)
			if err != nil {
				t.Fatalf("StepLogs: %v", err)
			}
			wd, err := filepath.EvalSymlinks(tt.wantDir(id))
			if err != nil {
				t.Fatal(err)
			}
			want := "from server|step value|from step|" + wd + "\n"
			if logs.Stdout != want {
				t.Errorf("step saw %q, want %q", logs.Stdout, want)
			}
		})
	}
}

func TestRunsExactlyOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p1 := newProvider(t, local.Options{Dir: dir})
	p2 := newProvider(t, local.Options{Dir: dir})
	cluster := providertest.CreateReady(t, p1, deadline)
	ran := filepath.Join(t.TempDir(), "ran")
	step := sh(`echo ran >> "$1"`, ran)
	name := providertest.NewStepName()

	// Two servers on one directory, each retrying the submission.
	var wg sync.WaitGroup
	ids := make([]string, 8)
	errs := make([]error, len(ids))
	for i := range ids {
		p := []*local.Provider{p1, p2}[i%2]
		wg.Go(func() {
			ids[i], errs[i] = p.SubmitStep(context.Background(), cluster, provider.StepRequest{Name: name, Step: step})
		})
	}
	wg.Wait()
	for i := range ids {
		if errs[i] != nil || ids[i] != ids[0] {
			t.Fatalf("submission %d = %q, %v; want %q", i, ids[i], errs[i], ids[0])
		}
	}
	providertest.WaitStep(t, p2, cluster, ids[0], deadline, "succeeded", func(s provider.Step) bool { return s.State == berth.StepSucceeded })
	if again := submit(t, p2, cluster, name, step); again != ids[0] {
		t.Fatalf("submission after the end = %s, want %s", again, ids[0])
	}
	b, err := os.ReadFile(ran)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "ran\n" {
		t.Fatalf("the step ran %d times: %q", strings.Count(string(b), "ran"), b)
	}
}

func getsid(pid int) (int, error) {
	sid, _, errno := syscall.RawSyscall(syscall.SYS_GETSID, uintptr(pid), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(sid), nil
}

// gone reports whether pid has ended: no such process, or a zombie.
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] == "Z"
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	timeout := time.After(deadline)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-timeout:
			t.Fatalf("not %s within %v", what, deadline)
		case <-tick.C:
		}
	}
}

// TestDetachedSession checks that a step runs in its own session, so that
// it outlives the server's terminal and process group, and that
// TerminateCluster still reaches the step's children.
func TestDetachedSession(t *testing.T) {
	t.Parallel()
	p, cluster := readyCluster(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	submit(t, p, cluster, providertest.NewStepName(), sh(`echo $$ > "$1.tmp" && mv "$1.tmp" "$1"; exec sleep 600`, pidFile))

	var pid int
	waitUntil(t, "writing its pid", func() bool {
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	mine, err := getsid(0)
	if err != nil {
		t.Fatal(err)
	}
	sid, err := getsid(pid)
	if err != nil {
		t.Fatalf("getsid(%d): %v", pid, err)
	}
	if sid == mine {
		t.Fatalf("step process %d is in the test's session %d", pid, mine)
	}
	pgid, err := syscall.Getpgid(pid)
	if err != nil {
		t.Fatal(err)
	}
	if pgid != sid {
		t.Errorf("step process %d: group %d, session %d; want the session's own group", pid, pgid, sid)
	}
	if pid == sid {
		t.Fatalf("the step itself leads the session; want the wrapper to")
	}

	if err := p.TerminateCluster(context.Background(), cluster); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "killed with its group", func() bool { return gone(pid) })
}

func TestClusterStates(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)
	tests := []struct {
		name         string
		boot         time.Duration
		fallbackBoot time.Duration
		fallback     bool
		wantBoot     time.Duration
	}{
		{"primary", 10 * time.Second, 0, false, 10 * time.Second},
		{"fallback defaults to the boot time", 10 * time.Second, 0, true, 10 * time.Second},
		{"fallback has its own boot time", 10 * time.Second, time.Minute, true, time.Minute},
		{"primary ignores the fallback boot time", 10 * time.Second, time.Minute, false, 10 * time.Second},
		{"no boot time", 0, 0, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := clock.NewFake(start)
			dir := t.TempDir()
			p := newProvider(t, local.Options{Dir: dir, BootTime: tt.boot, FallbackBootTime: tt.fallbackBoot, Clock: clk})
			// Readiness is on disk, not in the Provider value: another
			// value, configured differently, sees the same.
			other := newProvider(t, local.Options{Dir: dir, BootTime: time.Hour, Clock: clk})
			id := providertest.Create(t, p, provider.CreateRequest{ClusterID: providertest.NewClusterID(), Pool: "small", Slots: 1, Fallback: tt.fallback})
			state := func() berth.ClusterState {
				t.Helper()
				c, err := p.DescribeCluster(context.Background(), id)
				if err != nil {
					t.Fatal(err)
				}
				c2, err := other.DescribeCluster(context.Background(), id)
				if err != nil {
					t.Fatal(err)
				}
				if c2 != c {
					t.Fatalf("two values over one dir disagree: %+v and %+v", c, c2)
				}
				return c.State
			}
			if tt.wantBoot > 0 {
				clk.Advance(tt.wantBoot - time.Nanosecond)
				if got := state(); got != berth.ClusterStarting {
					t.Fatalf("just before boot time the cluster is %s", got)
				}
				_, err := p.SubmitStep(context.Background(), id, provider.StepRequest{Name: "s", Step: berth.Step{Args: []string{"true"}}})
				if !errors.Is(err, provider.ErrNotReady) {
					t.Fatalf("SubmitStep while starting: %v, want ErrNotReady", err)
				}
				clk.Advance(time.Nanosecond)
			}
			if got := state(); got != berth.ClusterReady {
				t.Fatalf("at boot time the cluster is %s", got)
			}
		})
	}
}

func TestEndedClusters(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		end        func(p *local.Provider, id string) error
		state      berth.ClusterState
		reason     string
		capacity   bool
		stepSuffix string
	}{
		{"terminated", func(p *local.Provider, id string) error { return p.TerminateCluster(context.Background(), id) },
			berth.ClusterTerminated, "terminated on request", false, "(cluster terminated: terminated on request)"},
		{"killed", func(p *local.Provider, id string) error { return p.KillCluster(context.Background(), id) },
			berth.ClusterLost, local.ReasonKilled, true, "(cluster lost: " + local.ReasonKilled + ")"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			p := newProvider(t, local.Options{Dir: dir})
			cluster := providertest.CreateReady(t, p, deadline)
			done := submit(t, p, cluster, providertest.NewStepName(), sh("exit 0"))
			providertest.WaitStep(t, p, cluster, done, deadline, "succeeded", func(s provider.Step) bool { return s.State == berth.StepSucceeded })
			long := submit(t, p, cluster, providertest.NewStepName(), berth.Step{Args: []string{"sleep", "600"}})
			providertest.WaitStep(t, p, cluster, long, deadline, "running", func(s provider.Step) bool { return s.State == berth.StepRunning })

			if err := tt.end(p, cluster); err != nil {
				t.Fatal(err)
			}
			// A second call, and a call on a fresh value, change nothing.
			if err := tt.end(p, cluster); err != nil {
				t.Fatalf("again: %v", err)
			}
			p2 := newProvider(t, local.Options{Dir: dir})
			c, err := p2.DescribeCluster(context.Background(), cluster)
			if err != nil {
				t.Fatal(err)
			}
			if c.State != tt.state || c.Reason != tt.reason || (c.Class == provider.ClassCapacity) != tt.capacity {
				t.Fatalf("ended cluster is %+v, want %s %q capacity %v", c, tt.state, tt.reason, tt.capacity)
			}
			s := providertest.WaitStep(t, p2, cluster, long, deadline, "ended", providertest.Terminal)
			if s.State != berth.StepFailed || s.ExitCode != nil || s.Message != local.MessageVanished+" "+tt.stepSuffix {
				t.Errorf("the running step became %s, want failed, no exit code, %q", providertest.Format(s), local.MessageVanished+" "+tt.stepSuffix)
			}
			if s, _ := providertest.FindStep(p2, cluster, done); s == nil || s.State != berth.StepSucceeded {
				t.Errorf("the step that had succeeded is now %v", s)
			}
			_, err = p2.CreateCluster(context.Background(), provider.CreateRequest{ClusterID: cluster, Pool: "small", Slots: 1})
			if !errors.Is(err, berth.ErrConflict) {
				t.Errorf("CreateCluster of an ended cluster id: %v, want ErrConflict", err)
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	p, cluster := readyCluster(t)
	unknown := providertest.NewClusterID()
	ok := berth.Step{Args: []string{"true"}}
	ctx := context.Background()
	tests := []struct {
		name string
		call func() error
		want []error
	}{
		{"create with a bad id", func() error {
			_, err := p.CreateCluster(ctx, provider.CreateRequest{ClusterID: "Bad/ID", Pool: "small", Slots: 1})
			return err
		}, []error{berth.ErrInvalid}},
		{"create with no slots", func() error {
			_, err := p.CreateCluster(ctx, provider.CreateRequest{ClusterID: providertest.NewClusterID(), Pool: "small"})
			return err
		}, []error{berth.ErrInvalid}},
		{"describe a bad id", func() error { _, err := p.DescribeCluster(ctx, "../x"); return err }, []error{berth.ErrInvalid}},
		{"terminate a bad id", func() error { return p.TerminateCluster(ctx, "") }, []error{berth.ErrInvalid}},
		{"submit without a name", func() error {
			_, err := p.SubmitStep(ctx, cluster, provider.StepRequest{Step: ok})
			return err
		}, []error{berth.ErrInvalid}},
		{"submit without args", func() error {
			_, err := p.SubmitStep(ctx, cluster, provider.StepRequest{Name: "n", Step: berth.Step{}})
			return err
		}, []error{berth.ErrInvalid}},
		{"submit a jar step", func() error {
			_, err := p.SubmitStep(ctx, cluster, provider.StepRequest{Name: "n", Step: berth.Step{Args: []string{"a"}, Jar: "x.jar"}})
			return err
		}, []error{berth.ErrInvalid}},
		{"submit with a bad env key", func() error {
			_, err := p.SubmitStep(ctx, cluster, provider.StepRequest{Name: "n", Step: berth.Step{Args: []string{"true"}, Env: map[string]string{"A=B": "c"}}})
			return err
		}, []error{berth.ErrInvalid}},
		{"submit to an unknown cluster", func() error {
			_, err := p.SubmitStep(ctx, unknown, provider.StepRequest{Name: "n", Step: ok})
			return err
		}, []error{provider.ErrUnknownCluster, berth.ErrNotFound}},
		{"list steps of an unknown cluster", func() error { _, err := p.ListSteps(ctx, unknown); return err },
			[]error{provider.ErrUnknownCluster, berth.ErrNotFound}},
		{"kill an unknown cluster", func() error { return p.KillCluster(ctx, unknown) },
			[]error{provider.ErrUnknownCluster, berth.ErrNotFound}},
		{"cancel a bad step id", func() error { return p.CancelStep(ctx, cluster, "../../x") }, []error{berth.ErrInvalid}},
		{"cancel an unknown step", func() error { return p.CancelStep(ctx, cluster, "no-such-step") }, []error{berth.ErrNotFound}},
		{"logs of an unknown step", func() error { _, err := p.StepLogs(ctx, cluster, "no-such-step"); return err }, []error{berth.ErrNotFound}},
		{"logs on an unknown cluster", func() error { _, err := p.StepLogs(ctx, unknown, "no-such-step"); return err },
			[]error{provider.ErrUnknownCluster, berth.ErrNotFound}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			for _, want := range tt.want {
				if !errors.Is(err, want) {
					t.Errorf("error %v, want %v", err, want)
				}
			}
		})
	}
	steps, err := p.ListSteps(ctx, cluster)
	if err != nil || len(steps) != 0 {
		t.Fatalf("bad input left steps behind: %v, %v", steps, err)
	}
	c, err := p.DescribeCluster(ctx, unknown)
	if err != nil || c.State != berth.ClusterLost || c.Reason != local.ReasonUnknown {
		t.Fatalf("DescribeCluster of an unknown id = %+v, %v", c, err)
	}
	if _, err := local.New(local.Options{}); !errors.Is(err, berth.ErrInvalid) {
		t.Errorf("New without a dir: %v, want ErrInvalid", err)
	}
}

// The crash tests run a real server in a child process (this test binary
// again), kill it with SIGKILL after it started a step, or inside
// SubmitStep, and read the step from a new Provider over the same
// directory.

const (
	helperDirEnv     = "BERTH_LOCAL_HELPER_DIR"
	helperClusterEnv = "BERTH_LOCAL_HELPER_CLUSTER"
	helperStepEnv    = "BERTH_LOCAL_HELPER_STEP"
	// helperCrashAtEnv names the hook point of SubmitStep where the
	// helper stops, after writing the step's id and its wrapper's pid to
	// the file helperMarkerEnv names, to be killed there.
	helperCrashAtEnv = "BERTH_LOCAL_HELPER_CRASH_AT"
	helperMarkerEnv  = "BERTH_LOCAL_HELPER_MARKER"
)

type helperStep struct {
	Name string     `json:"name"`
	Step berth.Step `json:"step"`
}

// TestHelperServer is the crashing server of TestSurvivesServerCrash and
// TestServerCrashInsideSubmit; it does nothing in a normal run.
func TestHelperServer(t *testing.T) {
	dir := os.Getenv(helperDirEnv)
	if dir == "" {
		t.Skip("helper process for the crash tests")
	}
	var hs helperStep
	if err := json.Unmarshal([]byte(os.Getenv(helperStepEnv)), &hs); err != nil {
		t.Fatal(err)
	}
	p, err := local.New(local.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if at := os.Getenv(helperCrashAtEnv); at != "" {
		marker := os.Getenv(helperMarkerEnv)
		local.SetSubmitHook(p, func(point, stepID string, pid int) {
			if point != at {
				return
			}
			if err := os.WriteFile(marker+".tmp", fmt.Appendf(nil, "%s %d\n", stepID, pid), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(marker+".tmp", marker); err != nil {
				t.Fatal(err)
			}
			idleUntilKilled()
			t.Fatal("the helper server was never killed inside SubmitStep")
		})
	}
	ctx := context.Background()
	cluster, err := p.CreateCluster(ctx, provider.CreateRequest{ClusterID: os.Getenv(helperClusterEnv), Pool: "small", Slots: 1})
	if err != nil {
		t.Fatal(err)
	}
	id, err := p.SubmitStep(ctx, cluster, provider.StepRequest{Name: hs.Name, Step: hs.Step})
	if err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("submitted " + id + "\n")
	idleUntilKilled()
	t.Fatal("the helper server was never killed")
}

// idleUntilKilled blocks the helper server until its parent kills it, or,
// should the parent die first, until its stdin (a pipe the parent holds
// open) closes.
func idleUntilKilled() { _, _ = io.Copy(io.Discard, os.Stdin) }

// helperServer returns the command that runs TestHelperServer on dir and
// cluster, submitting hs, with env added to its environment.
func helperServer(t *testing.T, dir, cluster string, hs helperStep, env ...string) *exec.Cmd {
	t.Helper()
	b, err := json.Marshal(hs)
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	server := exec.Command(exe, "-test.run=^TestHelperServer$")
	server.Env = append(os.Environ(), helperDirEnv+"="+dir, helperClusterEnv+"="+cluster, helperStepEnv+"="+string(b))
	server.Env = append(server.Env, env...)
	server.Stderr = t.Output()
	if _, err := server.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	return server
}

func TestSurvivesServerCrash(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	work := t.TempDir()
	ran, release := filepath.Join(work, "ran"), filepath.Join(work, "release")
	cluster := providertest.NewClusterID()
	hs := helperStep{
		Name: providertest.NewStepName(),
		Step: sh(`echo ran >> "$1"; while [ ! -e "$2" ]; do sleep 0.05; done; echo released`, ran, release),
	}
	server := helperServer(t, dir, cluster, hs)
	out, err := server.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	// Whatever happens, the step must not outlive the test.
	p := newProvider(t, local.Options{Dir: dir})
	providertest.Cleanup(t, p, cluster)
	t.Cleanup(func() { server.Process.Kill(); server.Wait() })

	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if id, ok := strings.CutPrefix(sc.Text(), "submitted "); ok {
				lines <- id
				return
			}
		}
		close(lines)
	}()
	var stepID string
	select {
	case id, ok := <-lines:
		if !ok {
			t.Fatal("the helper server ended without submitting")
		}
		stepID = id
	case <-time.After(deadline):
		t.Fatal("the helper server did not submit in time")
	}
	if err := server.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Wait returns once the pipe closes: the step must not have inherited
	// the server's stdout.
	_ = server.Wait()

	s, err := providertest.FindStep(p, cluster, stepID)
	if err != nil || s == nil || s.State != berth.StepRunning || s.Name != hs.Name {
		t.Fatalf("after the crash the step is %v (err %v), want running", s, err)
	}
	if again := submit(t, p, cluster, hs.Name, hs.Step); again != stepID {
		t.Fatalf("resubmission after the crash = %s, want %s", again, stepID)
	}
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s2 := providertest.WaitStep(t, p, cluster, stepID, deadline, "ended", providertest.Terminal)
	if s2.State != berth.StepSucceeded || s2.ExitCode == nil || *s2.ExitCode != 0 {
		t.Fatalf("adopted step ended %s, want succeeded", providertest.Format(s2))
	}
	logs, err := p.StepLogs(context.Background(), cluster, stepID)
	if err != nil || logs.Stdout != "released\n" {
		t.Errorf("adopted step's logs %+v, %v", logs, err)
	}
	if b, err := os.ReadFile(ran); err != nil || string(b) != "ran\n" {
		t.Errorf("the step ran %q, want once (err %v)", b, err)
	}
}

// TestServerCrashInsideSubmit kills the server inside SubmitStep, after it
// started the step's wrapper and before it let it run the step: before the
// pid record, and between the pid record and the go line. The step never
// runs, is not listed, and a new submission of its name runs it once,
// under the same id.
func TestServerCrashInsideSubmit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		point string
		// files is what the step's directory holds after the crash: the
		// wrapper must have added nothing.
		files []string
	}{
		{local.HookStarted, []string{"stderr", "stdout"}},
		{local.HookRecorded, []string{"stderr", "stdout", "step.json"}},
	}
	for _, tt := range tests {
		t.Run(tt.point, func(t *testing.T) {
			t.Parallel()
			dir, work := t.TempDir(), t.TempDir()
			ran, marker := filepath.Join(work, "ran"), filepath.Join(work, "marker")
			cluster := providertest.NewClusterID()
			hs := helperStep{Name: providertest.NewStepName(), Step: sh(`echo ran >> "$1"`, ran)}
			server := helperServer(t, dir, cluster, hs, helperCrashAtEnv+"="+tt.point, helperMarkerEnv+"="+marker)
			server.Stdout = t.Output()
			if err := server.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan struct{})
			go func() {
				_ = server.Wait()
				close(exited)
			}()
			// Whatever happens, no process may outlive the test.
			p := newProvider(t, local.Options{Dir: dir})
			providertest.Cleanup(t, p, cluster)
			t.Cleanup(func() {
				server.Process.Kill()
				<-exited
			})

			var stepID string
			var wrapper int
			waitUntil(t, "inside SubmitStep", func() bool {
				select {
				case <-exited:
					t.Fatalf("the helper server ended before reaching %s", tt.point)
				default:
				}
				b, err := os.ReadFile(marker)
				if err != nil {
					return false
				}
				_, err = fmt.Sscan(string(b), &stepID, &wrapper)
				return err == nil
			})
			if err := server.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			<-exited

			ctx := context.Background()
			if steps, err := p.ListSteps(ctx, cluster); err != nil || len(steps) != 0 {
				t.Fatalf("after the crash ListSteps = %+v, %v; want the step not listed", steps, err)
			}
			// The wrapper meets the end of its gate and exits, having run
			// and written nothing.
			waitUntil(t, "the crashed server's wrapper gone", func() bool { return gone(wrapper) })
			if _, err := os.Stat(ran); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the step ran though its server died before letting it: %v", err)
			}
			logs, err := p.StepLogs(ctx, cluster, stepID)
			if err != nil {
				t.Fatalf("StepLogs: %v", err)
			}
			entries, err := os.ReadDir(logs.Location)
			if err != nil {
				t.Fatal(err)
			}
			var files []string
			for _, e := range entries {
				files = append(files, e.Name())
			}
			if !slices.Equal(files, tt.files) || logs.Stdout != "" || logs.Stderr != "" {
				t.Fatalf("the step's directory holds %v, stdout %q, stderr %q; want %v and no output", files, logs.Stdout, logs.Stderr, tt.files)
			}
			if steps, err := p.ListSteps(ctx, cluster); err != nil || len(steps) != 0 {
				t.Fatalf("with its wrapper gone ListSteps = %+v, %v; want the step not listed", steps, err)
			}

			if again := submit(t, p, cluster, hs.Name, hs.Step); again != stepID {
				t.Fatalf("resubmission after the crash = %s, want %s", again, stepID)
			}
			s := providertest.WaitStep(t, p, cluster, stepID, deadline, "ended", providertest.Terminal)
			if s.State != berth.StepSucceeded || s.Name != hs.Name {
				t.Fatalf("resubmitted step ended %s, want succeeded", providertest.Format(s))
			}
			if b, err := os.ReadFile(ran); err != nil || string(b) != "ran\n" {
				t.Fatalf("the step ran %q (err %v), want once", b, err)
			}
			if steps, err := p.ListSteps(ctx, cluster); err != nil || len(steps) != 1 {
				t.Fatalf("ListSteps = %+v, %v; want the one step", steps, err)
			}
		})
	}
}

func TestFindClusterAndCheckStep(t *testing.T) {
	p := newProvider(t, local.Options{})
	ctx := context.Background()
	cluster := providertest.NewClusterID()
	if _, found, err := p.FindCluster(ctx, cluster); err != nil || found {
		t.Fatalf("FindCluster before create: found=%v err=%v", found, err)
	}
	id := providertest.Create(t, p, provider.CreateRequest{ClusterID: cluster, Pool: "small", Slots: 1})
	providertest.Cleanup(t, p, id)
	if got, found, err := p.FindCluster(ctx, cluster); err != nil || !found || got != id {
		t.Fatalf("FindCluster after create: %q found=%v err=%v", got, found, err)
	}
	if err := p.TerminateCluster(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, found, err := p.FindCluster(ctx, cluster); err != nil || found {
		t.Fatalf("FindCluster of a terminated cluster: found=%v err=%v", found, err)
	}
	if err := p.CheckStep(berth.Step{Args: []string{"true"}}); err != nil {
		t.Errorf("CheckStep(true) = %v", err)
	}
	if err := p.CheckStep(berth.Step{Jar: "s3://b/x.jar"}); !errors.Is(err, berth.ErrInvalid) {
		t.Errorf("CheckStep(jar) = %v, want ErrInvalid", err)
	}
}
