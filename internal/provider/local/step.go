package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/provider"
)

// wrapper runs a step's argv and records its exit code atomically. Its
// arguments are the step directory, the path of mv, then the argv. The
// argv runs in a subshell that execs it, so that it is a process of its
// own (a builtin such as exit or exec cannot end the wrapper before it
// records the code) and a missing executable is exit code 127 with the
// shell's "not found" on stderr.
const wrapper = `d=$1 mv=$2; shift 2; (exec "$@"); c=$?; ` +
	`printf '%d\n' "$c" >"$d/exit.tmp" && "$mv" -f "$d/exit.tmp" "$d/exit"; exit "$c"`

// MessageVanished starts the message of a step whose process ended without
// recording an exit code: killed, or its machine restarted.
const MessageVanished = "process vanished"

// stepSpec is spec.json: the step as submitted.
type stepSpec struct {
	Name        string            `json:"name"`
	Argv        []string          `json:"argv"`
	Env         map[string]string `json:"env,omitempty"`
	Dir         string            `json:"dir,omitempty"`
	SubmittedAt time.Time         `json:"submitted_at"`
}

// stepID names a step's directory after its name: a readable sanitized
// prefix and a hash of the whole name, which keeps names that sanitize
// alike apart. The same name always gives the same id, which is what makes
// SubmitStep idempotent across restarts.
func stepID(name string) string {
	sum := sha256.Sum256([]byte(name))
	var b strings.Builder
	dash := true // no leading dash, no runs of dashes
	for _, r := range strings.ToLower(name) {
		if b.Len() >= 40 {
			break
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	prefix := strings.TrimRight(b.String(), "-")
	if prefix == "" {
		prefix = "step"
	}
	return prefix + "-" + hex.EncodeToString(sum[:8])
}

func checkStepRequest(req provider.StepRequest) error {
	if req.Name == "" {
		return errors.New("step name is required")
	}
	s := req.Step
	if s.Jar != "" || s.MainClass != "" {
		return errors.New("the local provider runs argv steps; jar and main_class are for EMR")
	}
	if len(s.Args) == 0 || s.Args[0] == "" {
		return errors.New("step args must name a program")
	}
	for _, a := range s.Args {
		if strings.ContainsRune(a, 0) {
			return errors.New("step args must not contain NUL")
		}
	}
	for k, v := range s.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			return fmt.Errorf("step env key %q is not a valid variable name", k)
		}
	}
	if strings.ContainsRune(s.Dir, 0) {
		return errors.New("step dir must not contain NUL")
	}
	return nil
}

// SubmitStep starts req's argv as a detached process on a ready cluster. If
// a step of that name exists on the cluster, whatever its state, it returns
// its id and starts nothing. A process that cannot be started at all (a
// missing working directory, say) is still a step: it is recorded and
// reported failed, with the reason, by ListSteps.
func (p *Provider) SubmitStep(ctx context.Context, clusterID string, req provider.StepRequest) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if err := checkClusterID(clusterID); err != nil {
		return "", fmt.Errorf("submit step: %w", err)
	}
	if err := checkStepRequest(req); err != nil {
		return "", fmt.Errorf("submit step %q to cluster %s: %w: %w", req.Name, clusterID, err, berth.ErrInvalid)
	}
	unlock, err := p.lockCluster(clusterID, syscall.LOCK_EX)
	if err != nil {
		return "", fmt.Errorf("submit step %q: %w", req.Name, err)
	}
	defer unlock()

	id := stepID(req.Name)
	dir := filepath.Join(p.stepsDir(clusterID), id)
	if _, err := os.Stat(filepath.Join(dir, "spec.json")); err == nil {
		return id, nil
	}
	c, err := p.readCluster(clusterID)
	if err != nil {
		return "", fmt.Errorf("submit step %q: %w", req.Name, err)
	}
	if st := c.state(p.clock.Now()); st != berth.ClusterReady {
		return "", fmt.Errorf("submit step %q: cluster %s is %s: %w", req.Name, clusterID, st, provider.ErrNotReady)
	}

	spec := stepSpec{
		Name:        req.Name,
		Argv:        req.Step.Args,
		Env:         req.Step.Env,
		Dir:         req.Step.Dir,
		SubmittedAt: p.clock.Now(),
	}
	if err := p.placeStepDir(dir, &spec); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return id, nil
		}
		return "", fmt.Errorf("submit step %q to cluster %s: %w", req.Name, clusterID, err)
	}
	if err := p.start(clusterID, id, dir, &spec); err != nil {
		return "", fmt.Errorf("submit step %q to cluster %s: %w", req.Name, clusterID, err)
	}
	return id, nil
}

// placeStepDir builds the step's directory under tmp/ and renames it into
// place, so that the step is on disk, complete, before it runs.
func (p *Provider) placeStepDir(dir string, spec *stepSpec) error {
	tmp, err := os.MkdirTemp(filepath.Join(p.dir, "tmp"), "step-")
	if err != nil {
		return err
	}
	err = writeJSON(filepath.Join(tmp, "spec.json"), spec)
	for _, name := range []string{"stdout", "stderr"} {
		if err == nil {
			err = os.WriteFile(filepath.Join(tmp, name), nil, 0o644)
		}
	}
	if err == nil {
		err = syncDir(tmp)
	}
	if err == nil {
		err = os.Rename(tmp, dir)
	}
	if err != nil {
		os.RemoveAll(tmp)
		return err
	}
	return syncDir(filepath.Dir(dir))
}

// start launches the wrapper in a session of its own and records its pid.
func (p *Provider) start(clusterID, id, dir string, spec *stepSpec) error {
	stdout, err := os.OpenFile(filepath.Join(dir, "stdout"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	defer stdout.Close()
	stderr, err := os.OpenFile(filepath.Join(dir, "stderr"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	defer stderr.Close()

	args := append([]string{"-c", wrapper, "berth-step", dir, p.mv}, spec.Argv...)
	cmd := exec.Command("/bin/sh", args...)
	cmd.Dir = spec.Dir
	if cmd.Dir == "" {
		cmd.Dir = dir
	}
	// The server's environment, its PWD corrected to where the step runs,
	// BERTH_STEP_NAME (the attempt's identity, as EMR shows it in the step's
	// name), then the step's own variables, which win.
	cmd.Env = append(os.Environ(), "BERTH_STEP_NAME="+spec.Name)
	if filepath.IsAbs(cmd.Dir) {
		cmd.Env = append(cmd.Env, "PWD="+cmd.Dir)
	}
	for _, k := range slices.Sorted(maps.Keys(spec.Env)) {
		cmd.Env = append(cmd.Env, k+"="+spec.Env[k])
	}
	cmd.Stdout, cmd.Stderr = stdout, stderr // stdin stays nil: /dev/null
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	log := p.log.With("cluster_id", clusterID, "step_id", id, "step_name", spec.Name)
	// Checked here because exec reports a bad working directory as an
	// error of /bin/sh, which would mislead whoever reads it.
	err = checkWorkDir(cmd.Dir)
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		log.Warn("local step could not start", "err", err)
		if werr := writeFileAtomic(filepath.Join(dir, "start_error"), []byte(err.Error()+"\n")); werr != nil {
			return fmt.Errorf("start: %w (and recording that: %v)", err, werr)
		}
		return nil
	}
	pr := procRecord{PID: cmd.Process.Pid, PGID: cmd.Process.Pid, StartedAt: p.clock.Now()}
	// Read before anyone waits for the child: until then even a child
	// that has already exited is a zombie whose stat is still there.
	if p.procfs {
		if st, err := readProcStat(pr.PID); err == nil {
			pr.StartTicks = st.start
		}
	}
	// Reap in the background so that an ended step does not linger as the
	// server's zombie. After a restart its orphan is init's to reap.
	go cmd.Wait()
	if err := writeJSON(filepath.Join(dir, "proc.json"), pr); err != nil {
		// Without a record the step could never be watched or stopped.
		_ = p.signalGroup(pr, syscall.SIGKILL)
		return fmt.Errorf("record pid: %w", err)
	}
	log.Info("local step started", "pid", pr.PID)
	return nil
}

func checkWorkDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("working directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("working directory %s is not a directory", dir)
	}
	return nil
}

// ListSteps reports every step of the cluster from what is on disk, so a
// new Provider over the same directory sees the steps an earlier one
// started.
func (p *Provider) ListSteps(ctx context.Context, clusterID string) ([]provider.Step, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkClusterID(clusterID); err != nil {
		return nil, fmt.Errorf("list steps: %w", err)
	}
	// Shared: never see a step between its rename into place and its pid
	// record.
	unlock, err := p.lockCluster(clusterID, syscall.LOCK_SH)
	if err != nil {
		return nil, fmt.Errorf("list steps: %w", err)
	}
	defer unlock()
	c, err := p.readCluster(clusterID)
	if err != nil {
		return nil, fmt.Errorf("list steps of cluster %s: %w", clusterID, err)
	}
	ids, err := p.stepIDs(clusterID)
	if err != nil {
		return nil, fmt.Errorf("list steps of cluster %s: %w", clusterID, err)
	}
	type listed struct {
		step      provider.Step
		submitted time.Time
	}
	all := make([]listed, 0, len(ids))
	for _, id := range ids {
		s, spec := p.readStep(c, id)
		all = append(all, listed{s, spec.SubmittedAt})
	}
	slices.SortFunc(all, func(a, b listed) int {
		if c := a.submitted.Compare(b.submitted); c != 0 {
			return c
		}
		return strings.Compare(a.step.ID, b.step.ID)
	})
	steps := make([]provider.Step, len(all))
	for i, l := range all {
		steps[i] = l.step
	}
	return steps, nil
}

// stepIDs lists the cluster's step directories.
func (p *Provider) stepIDs(clusterID string) ([]string, error) {
	entries, err := os.ReadDir(p.stepsDir(clusterID))
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range entries {
		if e.IsDir() && berth.ValidID(e.Name()) {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

// readStep derives a step's state from its files. The order matters: a
// start error or a missing pid record ends the step at once; a cancel
// request wins over the exit code (a step that exits in its SIGTERM handler
// has not done its work); an exit code wins over liveness.
func (p *Provider) readStep(c *clusterRecord, id string) (provider.Step, stepSpec) {
	s, spec := p.deriveStep(c, id)
	// File times come from the kernel's coarse clock, StartedAt from ours:
	// never let the end come before the start.
	if !s.EndedAt.IsZero() && s.EndedAt.Before(s.StartedAt) {
		s.EndedAt = s.StartedAt
	}
	return s, spec
}

func (p *Provider) deriveStep(c *clusterRecord, id string) (provider.Step, stepSpec) {
	dir := filepath.Join(p.stepsDir(c.ID), id)
	s := provider.Step{ID: id, State: berth.StepFailed}
	var spec stepSpec
	if err := readJSON(filepath.Join(dir, "spec.json"), &spec); err != nil {
		s.Message = "unreadable step record: " + err.Error()
		return s, spec
	}
	s.Name = spec.Name

	if msg, at, ok := readNote(filepath.Join(dir, "start_error")); ok {
		s.Message = "could not start: " + msg
		s.StartedAt, s.EndedAt = at, at
		return s, spec
	}
	pr, err := readProc(dir)
	if err != nil {
		// Under the cluster lock a step without a pid record is one whose
		// submitter died before writing it: it cannot be watched, and
		// starting it now could run it twice.
		if errors.Is(err, fs.ErrNotExist) {
			s.Message = "never started: the server stopped while submitting it"
		} else {
			s.Message = "unreadable step record: " + err.Error()
		}
		s.EndedAt = spec.SubmittedAt
		return s, spec
	}
	s.StartedAt = pr.StartedAt

	code, exitAt, exited, exitErr := readExit(dir)
	alive := false
	if !exited && exitErr == nil {
		alive = p.alive(pr)
		if !alive {
			// The wrapper writes the code and then exits: look again, or
			// a step that just finished would read as vanished.
			code, exitAt, exited, exitErr = readExit(dir)
		}
	}
	if exited {
		s.ExitCode = &code
	}
	if _, cancelAt, ok := readNote(filepath.Join(dir, "cancelled")); ok {
		if alive {
			s.State, s.Message = berth.StepRunning, "cancelling"
			return s, spec
		}
		s.State, s.Message = berth.StepCancelled, "cancelled"
		s.EndedAt = cancelAt
		if exited && exitAt.Before(cancelAt) {
			s.EndedAt = exitAt
		}
		return s, spec
	}
	switch {
	case exitErr != nil:
		s.Message = "unreadable exit status: " + exitErr.Error()
		s.EndedAt = exitAt
	case exited:
		s.EndedAt = exitAt
		if code == 0 {
			s.State = berth.StepSucceeded
			return s, spec
		}
		s.Message = exitMessage(code, spec.Argv)
	case alive:
		s.State = berth.StepRunning
	default:
		s.Message = MessageVanished
		if c.ended() {
			s.Message += " (cluster " + c.State
			if c.Reason != "" {
				s.Message += ": " + c.Reason
			}
			s.Message += ")"
		}
		s.EndedAt = lastSignOfLife(dir, pr.StartedAt, c)
	}
	return s, spec
}

func exitMessage(code int, argv []string) string {
	msg := "exited with code " + strconv.Itoa(code)
	switch code {
	case 126:
		msg += fmt.Sprintf(": %q could not be executed (see stderr)", argv[0])
	case 127:
		msg += fmt.Sprintf(": command not found: %q (see stderr)", argv[0])
	}
	return msg
}

// readExit reads the exit file the wrapper renamed into place.
func readExit(dir string) (code int, at time.Time, ok bool, err error) {
	path := filepath.Join(dir, "exit")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, time.Time{}, false, nil
	}
	if err == nil {
		code, err = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	if fi, serr := os.Stat(path); serr == nil {
		at = fi.ModTime().UTC()
	}
	if err != nil {
		return 0, at, false, err
	}
	return code, at, true, nil
}

// readNote reads a marker file holding an RFC 3339 time and, for
// start_error, a message: the time is the file's when it holds none.
func readNote(path string) (msg string, at time.Time, ok bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", time.Time{}, false
	}
	text := strings.TrimSpace(string(b))
	if t, err := time.Parse(time.RFC3339Nano, text); err == nil {
		return "", t, true
	}
	if fi, err := os.Stat(path); err == nil {
		at = fi.ModTime().UTC()
	}
	return text, at, true
}

// lastSignOfLife estimates when a vanished step ended: when its cluster
// ended, or else when it last wrote output.
func lastSignOfLife(dir string, started time.Time, c *clusterRecord) time.Time {
	if !c.EndedAt.IsZero() {
		return c.EndedAt
	}
	last := started
	for _, name := range []string{"stdout", "stderr"} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err == nil && fi.ModTime().After(last) {
			last = fi.ModTime().UTC()
		}
	}
	return last
}

// CancelStep records the cancellation, then asks the step's process group
// to stop (SIGTERM) and kills it after a short grace. It returns without
// waiting for the grace. Cancelling an ended step does nothing; cancelling
// one that is still stopping signals it again.
func (p *Provider) CancelStep(ctx context.Context, clusterID, stepID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkClusterID(clusterID); err != nil {
		return fmt.Errorf("cancel step: %w", err)
	}
	if !berth.ValidID(stepID) {
		return fmt.Errorf("cancel step: local step id %q: %w", stepID, berth.ErrInvalid)
	}
	unlock, err := p.lockCluster(clusterID, syscall.LOCK_EX)
	if err != nil {
		return fmt.Errorf("cancel step %s: %w", stepID, err)
	}
	defer unlock()
	c, err := p.readCluster(clusterID)
	if err != nil {
		return fmt.Errorf("cancel step %s: %w", stepID, err)
	}
	dir := filepath.Join(p.stepsDir(clusterID), stepID)
	if _, err := os.Stat(filepath.Join(dir, "spec.json")); err != nil {
		return fmt.Errorf("cancel step %s on cluster %s: %w", stepID, clusterID, berth.ErrNotFound)
	}
	if s, _ := p.readStep(c, stepID); s.State.Terminal() {
		return nil
	}
	pr, err := readProc(dir)
	if err != nil {
		return fmt.Errorf("cancel step %s: %w", stepID, err)
	}
	now := p.clock.Now()
	if _, err := writeFileExclusive(filepath.Join(dir, "cancelled"), []byte(now.Format(time.RFC3339Nano)+"\n")); err != nil {
		return fmt.Errorf("cancel step %s: record it: %w", stepID, err)
	}
	if err := p.signalGroup(pr, syscall.SIGTERM); err != nil {
		return fmt.Errorf("cancel step %s: %w", stepID, err)
	}
	p.log.Info("local step cancelled", "cluster_id", clusterID, "step_id", stepID, "pid", pr.PID)
	go func() {
		<-p.clock.After(cancelGrace)
		if err := p.signalGroup(pr, syscall.SIGKILL); err != nil {
			p.log.Warn("local step: kill after grace", "cluster_id", clusterID, "step_id", stepID, "err", err)
		}
	}()
	return nil
}

// StepLogs returns the end of the step's output and the directory that
// holds all of it.
func (p *Provider) StepLogs(ctx context.Context, clusterID, stepID string) (berth.Logs, error) {
	if err := ctx.Err(); err != nil {
		return berth.Logs{}, err
	}
	if err := checkClusterID(clusterID); err != nil {
		return berth.Logs{}, fmt.Errorf("step logs: %w", err)
	}
	if !berth.ValidID(stepID) {
		return berth.Logs{}, fmt.Errorf("step logs: local step id %q: %w", stepID, berth.ErrInvalid)
	}
	if _, err := os.Stat(p.clusterDir(clusterID)); errors.Is(err, fs.ErrNotExist) {
		return berth.Logs{}, fmt.Errorf("step logs: %w", errUnknownCluster(clusterID))
	}
	dir := filepath.Join(p.stepsDir(clusterID), stepID)
	if _, err := os.Stat(filepath.Join(dir, "spec.json")); err != nil {
		return berth.Logs{}, fmt.Errorf("step logs of %s on cluster %s: %w", stepID, clusterID, berth.ErrNotFound)
	}
	stdout, err := readTail(filepath.Join(dir, "stdout"), maxLogBytes)
	if err != nil {
		return berth.Logs{}, fmt.Errorf("step logs of %s: %w", stepID, err)
	}
	stderr, err := readTail(filepath.Join(dir, "stderr"), maxLogBytes)
	if err != nil {
		return berth.Logs{}, fmt.Errorf("step logs of %s: %w", stepID, err)
	}
	return berth.Logs{Stdout: stdout, Stderr: stderr, Location: dir}, nil
}
