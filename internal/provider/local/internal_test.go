package local

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/clock"
	"github.com/berthhq/berth/internal/provider"
)

func TestStepID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		prefix string
	}{
		{"berth:job-0193ab4f5e6a7b8c9d0e:2:0", "berth-job-0193ab4f5e6a7b8c9d0e-2-0-"},
		{"BERTH:Job:1:0", "berth-job-1-0-"},
		{"::://..", "step-"},
		{"../../etc/passwd", "etc-passwd-"},
		{strings.Repeat("a", 200), strings.Repeat("a", 40) + "-"},
		{"ünïcode name", "n-code-name-"},
	}
	seen := map[string]string{}
	for _, tt := range tests {
		id := stepID(tt.name)
		if !berth.ValidID(id) {
			t.Errorf("stepID(%q) = %q, not a safe name", tt.name, id)
		}
		if !strings.HasPrefix(id, tt.prefix) {
			t.Errorf("stepID(%q) = %q, want prefix %q", tt.name, id, tt.prefix)
		}
		if again := stepID(tt.name); again != id {
			t.Errorf("stepID(%q) is not stable: %q then %q", tt.name, id, again)
		}
		if other, ok := seen[id]; ok {
			t.Errorf("stepID(%q) = stepID(%q) = %q", tt.name, other, id)
		}
		seen[id] = tt.name
	}
	// Names that sanitize alike stay apart.
	if a, b := stepID("berth:a:1:0"), stepID("berth-a-1-0"); a == b {
		t.Errorf("two names share the id %q", a)
	}
}

func TestCheckExit(t *testing.T) {
	t.Parallel()
	tokens := newExitTokens()
	var rec procRecord
	tokens.record(&rec)
	tests := []struct {
		name string
		text string
		rec  procRecord
		code int
		ok   bool
	}{
		{"success with the ok token", "0 " + tokens.ok + "\n", rec, 0, true},
		{"failure with the fail token", "3 " + tokens.fail + "\n", rec, 3, true},
		{"success with the fail token", "0 " + tokens.fail + "\n", rec, 0, false},
		{"failure with the ok token", "3 " + tokens.ok + "\n", rec, 3, false},
		{"success with the ok token's hash", "0 " + rec.OKHash + "\n", rec, 0, false},
		{"a bare code", "0\n", rec, 0, false},
		{"another token", "0 " + newExitTokens().ok + "\n", rec, 0, false},
		{"more than a code and a token", "0 " + tokens.ok + " x\n", rec, 0, false},
		{"a negative code", "-1 " + tokens.fail + "\n", rec, 0, false},
		{"not a code", "zero " + tokens.ok + "\n", rec, 0, false},
		{"empty", "", rec, 0, false},
		{"a record without hashes", "0 " + tokens.ok + "\n", procRecord{}, 0, false},
		{"an empty token against a record without hashes", "0 \n", procRecord{}, 0, false},
	}
	for _, tt := range tests {
		code, ok := tt.rec.checkExit(tt.text)
		if ok != tt.ok || ok && code != tt.code {
			t.Errorf("%s: checkExit(%q) = %d, %v; want %d, %v", tt.name, tt.text, code, ok, tt.code, tt.ok)
		}
	}
}

func TestParseProcStat(t *testing.T) {
	t.Parallel()
	tail := " 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 777 19 20"
	tests := []struct {
		name    string
		in      string
		state   byte
		start   uint64
		wantErr bool
	}{
		{"plain", "42 (sleep) S" + tail, 'S', 777, false},
		{"zombie", "42 (sh) Z" + tail, 'Z', 777, false},
		{"command name with spaces and parentheses", "42 (a) (b c) R" + tail, 'R', 777, false},
		{"no command name", "42 sleep S" + tail, 0, 0, true},
		{"too short", "42 (sleep) S 1 2 3", 0, 0, true},
		{"bad start time", "42 (sleep) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 x", 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseProcStat(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && (got.state != tt.state || got.start != tt.start) {
				t.Fatalf("got state %c start %d, want %c %d", got.state, got.start, tt.state, tt.start)
			}
		})
	}
	// And the real thing.
	st, err := readProcStat(os.Getpid())
	if err != nil {
		t.Fatalf("own /proc stat: %v", err)
	}
	if st.state == 'Z' || st.start == 0 {
		t.Fatalf("own /proc stat: %+v", st)
	}
}

func TestReadTail(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name    string
		content string
		max     int64
		want    string
	}{
		{"shorter than the cap", "hello\n", 100, "hello\n"},
		{"exactly the cap", "0123456789", 10, "0123456789"},
		{"longer than the cap keeps the end", "0123456789", 4, "6789"},
		{"empty", "", 4, ""},
	}
	for _, tt := range tests {
		path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_"))
		if err := os.WriteFile(path, []byte(tt.content), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := readTail(path, tt.max)
		if err != nil || got != tt.want {
			t.Errorf("%s: readTail = %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
	if got, err := readTail(filepath.Join(dir, "missing"), 10); err != nil || got != "" {
		t.Errorf("missing file: %q, %v", got, err)
	}
}

// readyCluster returns a provider and a ready cluster on it, terminated
// when the test ends.
func readyCluster(t *testing.T) (*Provider, string) {
	t.Helper()
	p, err := New(Options{Dir: t.TempDir(), Log: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	cluster := berth.NewID("cl", clock.Real{}.Now())
	if _, err := p.CreateCluster(context.Background(), provider.CreateRequest{ClusterID: cluster, Pool: "small", Slots: 1}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.TerminateCluster(context.Background(), cluster) })
	return p, cluster
}

// stepFixture is a ready cluster with a step directory made by hand, as a
// crash or a stranger's process would leave it.
type stepFixture struct {
	p       *Provider
	cluster string
	name    string
	id      string
	dir     string
	spec    stepSpec
	// legacy lays the step out as the version before step.json did.
	legacy bool
}

// newStepFixture places the step's directory as a submission leaves it
// before it records the step (a server that died there): see placeStep.
func newStepFixture(t *testing.T, legacy bool) stepFixture {
	t.Helper()
	p, cluster := readyCluster(t)
	f := stepFixture{p: p, cluster: cluster, name: "berth:job-x:1:0", legacy: legacy}
	f.spec = stepSpec{Name: f.name, Argv: []string{"true"}, SubmittedAt: clock.Real{}.Now()}
	f.id, f.dir = placeStep(t, p, cluster, f.spec, legacy)
	return f
}

// record records pr as the step's process, as its submitter does once the
// wrapper runs.
func (f stepFixture) record(t *testing.T, pr procRecord) {
	t.Helper()
	recordStep(t, f.dir, f.spec, pr, f.legacy)
}

// placeStep makes the directory of a step as its submission leaves it
// before the step's record: the directory and its output files, or, with
// legacy, the spec.json the version before step.json wrote first.
func placeStep(t *testing.T, p *Provider, cluster string, spec stepSpec, legacy bool) (id, dir string) {
	t.Helper()
	id = stepID(spec.Name)
	dir = filepath.Join(p.stepsDir(cluster), id)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]any{"stdout": nil, "stderr": nil}
	if legacy {
		files["spec.json"] = spec
	}
	for name, v := range files {
		var err error
		if v == nil {
			err = os.WriteFile(filepath.Join(dir, name), nil, 0o644)
		} else {
			err = writeJSON(filepath.Join(dir, name), v)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return id, dir
}

// recordStep writes the record of the step in dir: spec and process in
// step.json or, with legacy, the process in proc.json beside spec.json.
func recordStep(t *testing.T, dir string, spec stepSpec, pr procRecord, legacy bool) {
	t.Helper()
	var err error
	if legacy {
		err = writeJSON(filepath.Join(dir, "proc.json"), pr)
	} else {
		err = writeJSON(filepath.Join(dir, "step.json"), stepRecord{spec, pr})
	}
	if err != nil {
		t.Fatal(err)
	}
}

func (f stepFixture) step(t *testing.T) provider.Step {
	t.Helper()
	steps, err := f.p.ListSteps(context.Background(), f.cluster)
	if err != nil || len(steps) != 1 || steps[0].ID != f.id {
		t.Fatalf("ListSteps = %v, %v; want the one step %s", steps, err, f.id)
	}
	return steps[0]
}

// startDetached starts argv (by default a long sleep) in its own session,
// as the provider does, and kills and reaps it at the end of the test.
func startDetached(t *testing.T, argv ...string) (*exec.Cmd, procRecord) {
	t.Helper()
	if len(argv) == 0 {
		argv = []string{"sleep", "600"}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait() // an error here only says a test reaped it first
	})
	st, err := readProcStat(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	return cmd, procRecord{PID: cmd.Process.Pid, PGID: cmd.Process.Pid, StartTicks: st.start, StartedAt: clock.Real{}.Now()}
}

func TestLiveness(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		tweak func(r *procRecord)
		want  berth.StepState
	}{
		{"the recorded process is running", func(*procRecord) {}, berth.StepRunning},
		{"the pid belongs to a newer process", func(r *procRecord) { r.StartTicks++ }, berth.StepFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newStepFixture(t, false)
			_, rec := startDetached(t)
			tt.tweak(&rec)
			f.record(t, rec)
			s := f.step(t)
			if s.State != tt.want {
				t.Fatalf("step is %s (%q), want %s", s.State, s.Message, tt.want)
			}
			if tt.want == berth.StepFailed && s.Message != MessageVanished {
				t.Errorf("message %q, want %q", s.Message, MessageVanished)
			}
		})
	}
}

func TestZombieIsDead(t *testing.T) {
	t.Parallel()
	f := newStepFixture(t, false)
	cmd, rec := startDetached(t)
	f.record(t, rec)
	if s := f.step(t); s.State != berth.StepRunning {
		t.Fatalf("step is %s before the kill", s.State)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	// Not reaped yet: the process stays a zombie until Wait.
	deadline := time.After(10 * time.Second)
	for {
		st, err := readProcStat(rec.PID)
		if err != nil {
			t.Fatalf("the zombie disappeared: %v", err)
		}
		if st.state == 'Z' {
			break
		}
		select {
		case <-deadline:
			t.Fatal("the killed process never became a zombie")
		case <-time.After(5 * time.Millisecond):
		}
	}
	if s := f.step(t); s.State != berth.StepFailed || s.Message != MessageVanished {
		t.Fatalf("a step whose leader is a zombie is %s (%q), want failed: %s", s.State, s.Message, MessageVanished)
	}
}

func TestSignalGroupSparesStrangers(t *testing.T) {
	t.Parallel()
	p, err := New(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	cmd, rec := startDetached(t)
	stranger := rec
	stranger.StartTicks++
	// The group number now "belongs" to another process: no signal.
	if err := p.signalGroup(stranger, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	if err := p.signalGroup(rec, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("Wait: %v", err)
	}
	ws := exit.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the process ended by %v, want SIGKILL only", ws.Signal())
	}

	for _, pgid := range []int{0, 1, syscall.Getpgrp()} {
		if err := p.signalGroup(procRecord{PID: pgid, PGID: pgid}, syscall.Signal(0)); err == nil {
			t.Errorf("signalGroup agreed to signal group %d", pgid)
		}
	}
}

// A process that dies while its /proc entry is read is gone, as one that
// was reaped before: neither is an error of the signal that follows.
func TestGone(t *testing.T) {
	tests := []struct {
		err  error
		gone bool
	}{
		{&fs.PathError{Op: "open", Path: "/proc/1/stat", Err: syscall.ENOENT}, true},
		{&fs.PathError{Op: "read", Path: "/proc/1/stat", Err: syscall.ESRCH}, true},
		{&fs.PathError{Op: "open", Path: "/proc/1/stat", Err: syscall.EACCES}, false},
	}
	for _, tt := range tests {
		if got := gone(tt.err); got != tt.gone {
			t.Errorf("gone(%v) = %v, want %v", tt.err, got, tt.gone)
		}
	}
}
