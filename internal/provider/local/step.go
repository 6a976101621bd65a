package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

// wrapper runs a step's argv behind a start gate and records its exit code.
// Its arguments are the step's record directory, then the argv; it starts
// in the step's working directory, which is never the record directory
// (see doc.go).
//
// The gate: the wrapper's stdin is a pipe from the server, and it runs
// nothing until it reads the line "go <ok> <fail>", which the server writes
// only once step.json is on disk. If the server dies first the read meets
// end of file and the wrapper exits having written nothing, so a step is
// never run without a record of its process. Having read go, the wrapper
// creates the ran marker — an empty file, whose appearance is atomic — and
// then closes fd 3, the server's acknowledgement pipe; only then does it
// run the argv, with stdin from /dev/null. A step with a record and no
// ran marker whose wrapper has ended therefore never ran and never will.
//
// The exit file holds the code and the token of its outcome, ok or fail
// (see exitTokens). The tokens live in shell variables that are never
// exported; the subshell unsets them before it execs the argv all the
// same, because one the step's environment already had (or a shell option
// such as allexport) would be exported. The wrapper's variables have names
// of their own (_berth_*), so that unsetting them takes nothing from the
// step's environment that a step would miss, and it keeps the record
// directory in a positional parameter, which never reaches the step's
// environment.
//
// The exit file is written in place by the shell itself, with no mv: a
// step then starts two programs (the shell and the argv), not three, and
// starting a program is most of what a short step costs. A reader can
// meet the file half written, but only while the wrapper lives, and while
// it lives an exit file that does not check out counts as none (see
// exitTokens); once the wrapper has ended, the file is whole. What a step
// puts at that path first cannot turn into a success either: the write
// replaces a regular file's text, and the wrapper writes through nothing
// else (a link, a pipe it would block on), which reads as forged.
//
// The argv runs in a subshell that execs it, so that it is a process of
// its own (a builtin such as exit or exec cannot end the wrapper before it
// records the code) and a missing executable is exit code 127 with the
// shell's "not found" on stderr.
const wrapper = `IFS=' ' read -r _berth_go _berth_ok _berth_fail && [ "$_berth_go" = go ] || exit 125; ` +
	`: >"$1/ran" || exit 125; exec 3>&-; ` +
	`(unset _berth_go _berth_ok _berth_fail; shift; exec "$@") </dev/null; _berth_c=$?; ` +
	`if [ "$_berth_c" = 0 ]; then _berth_t=$_berth_ok; else _berth_t=$_berth_fail; fi; ` +
	`if [ ! -h "$1/exit" ] && { [ ! -e "$1/exit" ] || [ -f "$1/exit" ]; }; then ` +
	`printf '%d %s\n' "$_berth_c" "$_berth_t" >"$1/exit"; fi; exit "$_berth_c"`

// startTimeout bounds how long the server waits for a wrapper to take the
// go line and answer: a shell reading one line takes milliseconds, so a
// wrapper that has not answered by then is stuck (stopped, say) and is
// killed.
const startTimeout = 10 * time.Second

// killTimeout bounds the wait for a wrapper to end once it has been sent
// SIGKILL. It is not startTimeout, which tests shorten to make a wrapper
// stuck at once: how soon the kernel ends a killed process depends on the
// machine's load, not on the wrapper.
const killTimeout = 10 * time.Second

// settleTick is how often settle looks at a wrapper that is deciding, and
// a caller at a step's lock that is held.
const settleTick = 5 * time.Millisecond

// stepLockWait bounds the wait for a step's lock. A submission holds it
// for startTimeout and killTimeout at most, and a few file system calls;
// anything holding it longer is not a submission (a step that locked its
// own directory), and is reported rather than waited for.
const stepLockWait = startTimeout + killTimeout + time.Minute

// Points of SubmitStep where a test's hook may crash the server, or do
// what another caller could do meanwhile.
const (
	hookStarted  = "started"  // the wrapper runs; its record is not written yet
	hookRecorded = "recorded" // the record is durable; the go line is not written
	hookBusy     = "busy"     // another submission of the step is under way: wait for it
)

// MessageVanished starts the message of a step whose process ended without
// recording an exit code: killed, or its machine restarted.
const MessageVanished = "process vanished"

// MessageForgedExit starts the message of a step whose process ended and
// left an exit file its wrapper did not write (see exitTokens): whatever
// code it holds, the step failed.
const MessageForgedExit = "exit file not written by the step's wrapper"

// stepSpec is the step as submitted.
type stepSpec struct {
	Name        string            `json:"name"`
	Argv        []string          `json:"argv"`
	Env         map[string]string `json:"env,omitempty"`
	Dir         string            `json:"dir,omitempty"`
	SubmittedAt time.Time         `json:"submitted_at"`
}

// stepRecord is step.json: the step as submitted and the process that
// runs it, written once, after the wrapper started and before its go line,
// so that one fsync makes both durable. A record without a process (PID 0)
// is a step whose wrapper could not be started: start_error follows it.
type stepRecord struct {
	stepSpec
	procRecord
}

// readRecord reads a step's record; fs.ErrNotExist when it has none. A
// directory of the version before step.json holds spec.json and, once its
// wrapper started, proc.json: read together, they are the same record.
func readRecord(dir string) (stepRecord, error) {
	var r stepRecord
	err := readJSON(filepath.Join(dir, "step.json"), &r)
	if errors.Is(err, fs.ErrNotExist) {
		if err = readJSON(filepath.Join(dir, "spec.json"), &r.stepSpec); err == nil {
			if perr := readJSON(filepath.Join(dir, "proc.json"), &r.procRecord); !errors.Is(perr, fs.ErrNotExist) {
				err = perr
			}
		}
	}
	return r, err
}

// writeRecord puts the step's record in place and makes it durable: the
// file, and its entries in the step's directory (lock, opened by the
// claim) and in steps/ (the claim may just have made the step's
// directory). It is renamed into place, so that no reader sees it half
// written, and synced after the rename: the file's sync then commits the
// entries too on a journaling file system, and the directories' syncs that
// POSIX asks for find nothing left to write.
func writeRecord(lock *os.File, dir string, rec *stepRecord) error {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "step.json.tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, "step.json"))
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = lock.Sync()
	}
	if err == nil {
		err = syncDir(filepath.Dir(dir))
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
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

// CheckStep says whether the local provider can run a step at all.
func (p *Provider) CheckStep(s berth.Step) error {
	if err := checkStep(s); err != nil {
		return &berth.Error{Kind: berth.ErrInvalid, Public: err.Error()}
	}
	return nil
}

func checkStepRequest(req provider.StepRequest) error {
	if req.Name == "" {
		return errors.New("step name is required")
	}
	return checkStep(req.Step)
}

func checkStep(s berth.Step) error {
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
// reported failed, with the reason, by ListSteps. A step of that name that
// never ran — its submitter died before opening the start gate — is
// replaced by a fresh one under the same id.
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
	id := stepID(req.Name)
	dir := filepath.Join(p.stepsDir(clusterID), id)
	for {
		how, lock, err := p.claim(clusterID, id, dir, req.Name)
		if err != nil {
			return "", fmt.Errorf("submit step %q to cluster %s: %w", req.Name, clusterID, err)
		}
		switch how {
		case claimAdopt:
			return id, nil
		case claimBusy:
			// Another submission of this name, in this server or another
			// on the same directory, is under way: once it lets go of the
			// step, look again (and adopt what it made).
			p.hook(hookBusy, id, 0)
			ok, err := flockWithin(lock, syscall.LOCK_SH, p.stepLockWait)
			lock.Close()
			if err == nil && !ok {
				err = fmt.Errorf("its directory has been locked for more than %v", p.stepLockWait)
			}
			if err != nil {
				return "", fmt.Errorf("submit step %q to cluster %s: wait for its submission under way: %w", req.Name, clusterID, err)
			}
			continue
		}
		spec := stepSpec{
			Name:        req.Name,
			Argv:        req.Step.Args,
			Env:         req.Step.Env,
			Dir:         req.Step.Dir,
			SubmittedAt: p.clock.Now(),
		}
		err = p.start(clusterID, id, dir, lock, &spec)
		lock.Close()
		if err != nil {
			return "", fmt.Errorf("submit step %q to cluster %s: %w", req.Name, clusterID, err)
		}
		return id, nil
	}
}

// claimed is what claim found a submission should do.
type claimed int

const (
	// claimAdopt: a step of that name is there; its id is the answer.
	claimAdopt claimed = iota
	// claimBusy: a submission of it is under way; wait for its lock.
	claimBusy
	// claimOwn: submit it, holding its lock; its directory is empty.
	claimOwn
)

// claim decides, under the cluster's exclusive lock but only for as long
// as that takes, what a submission of the step in dir does. A submission
// holds the step's lock (an flock on its directory) from the claim until
// its wrapper has answered, and claims are made under the cluster's lock.
// So a step directory whose lock is free has no submission under way, and
// what it lacks its submitter will never add: a step without a record, or
// a gated record without the ran marker, is one whose submitter died before
// opening the gate. Such a step is emptied and submitted afresh. The
// cluster's lock is not held across the slow part (the wrapper's start,
// the record's fsync, the gate), so that submissions to one cluster do not
// wait for each other, nor its polls for them.
//
// With claimOwn and claimBusy it returns the open step directory: locked by
// the caller, or to wait on.
func (p *Provider) claim(clusterID, id, dir, name string) (how claimed, lock *os.File, err error) {
	unlock, err := p.lockCluster(clusterID, syscall.LOCK_EX)
	if err != nil {
		return 0, nil, err
	}
	defer unlock()
	defer func() {
		// The caller keeps the directory only to submit or to wait.
		if lock != nil && (err != nil || how == claimAdopt) {
			lock.Close()
			lock = nil
		}
	}()
	lock, err = os.Open(dir)
	found := err == nil
	if !found && !errors.Is(err, fs.ErrNotExist) {
		return 0, nil, err
	}
	if !found && p.movedAside(clusterID, id) {
		return claimAdopt, nil, nil
	}
	if found {
		held, err := tryFlock(lock)
		if err != nil || held {
			return claimBusy, lock, err
		}
		never, err := p.neverRan(dir)
		if err != nil || !never {
			return claimAdopt, lock, err
		}
	}
	c, err := p.readCluster(clusterID)
	if err != nil {
		return 0, lock, err
	}
	if st := c.state(p.clock.Now()); st != berth.ClusterReady {
		return 0, lock, fmt.Errorf("cluster %s is %s: %w", clusterID, st, provider.ErrNotReady)
	}
	if found {
		if err := emptyStepDir(dir); err != nil {
			return 0, lock, fmt.Errorf("replace the submission that never ran: %w", err)
		}
		p.log.Info("local step replaced: its earlier submission never ran", "cluster_id", clusterID, "step_id", id, "step_name", name)
		return claimOwn, lock, nil
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return 0, nil, err
	}
	if lock, err = os.Open(dir); err != nil {
		return 0, nil, err
	}
	// Free: every other claim waits for the cluster's lock.
	return claimOwn, lock, flock(lock, syscall.LOCK_EX)
}

// emptyStepDir removes what a submission that never ran left in its
// directory, the record first: a crash on the way leaves a step without a
// record, which never ran, as before.
func emptyStepDir(dir string) error {
	for _, name := range []string{"step.json", "proc.json", "spec.json"} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// start launches the wrapper in a session of its own, records the step
// (its spec and its process, one file made durable before the go line),
// opens its start gate and waits for it to say it ran the step. lock is the
// step's directory, locked by the caller. Errors leave a directory that
// ListSteps omits and SubmitStep replaces: the wrapper ran nothing.
func (p *Provider) start(clusterID, id, dir string, lock *os.File, spec *stepSpec) error {
	rec := stepRecord{stepSpec: *spec}
	stdout, err := os.OpenFile(filepath.Join(dir, "stdout"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer stdout.Close()
	stderr, err := os.OpenFile(filepath.Join(dir, "stderr"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer stderr.Close()
	// The gate (the wrapper's stdin) and the acknowledgement (its fd 3).
	// The server's ends are close-on-exec, so no other child holds them:
	// the gate reads end of file the moment this server dies.
	gateR, gateW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("gate pipe: %w", err)
	}
	defer gateW.Close()
	ackR, ackW, err := os.Pipe()
	if err != nil {
		gateR.Close()
		return fmt.Errorf("acknowledgement pipe: %w", err)
	}
	defer ackR.Close()
	tokens := newExitTokens()

	args := append([]string{"-c", wrapper, "berth-step", dir}, spec.Argv...)
	cmd := exec.Command("/bin/sh", args...)
	// Never the record directory: what the step writes where it runs must
	// not be able to stand for what the wrapper records.
	cmd.Dir = spec.Dir
	if cmd.Dir == "" {
		cmd.Dir = p.workDir(clusterID, id)
	}
	// The server's environment, its PWD corrected to where the step runs,
	// BERTH_STEP_NAME (the attempt's identity, as EMR shows it in the step's
	// name), then the step's own variables, which win. None of them names
	// the record directory.
	cmd.Env = append(os.Environ(), "BERTH_STEP_NAME="+spec.Name)
	if filepath.IsAbs(cmd.Dir) {
		cmd.Env = append(cmd.Env, "PWD="+cmd.Dir)
	}
	for _, k := range slices.Sorted(maps.Keys(spec.Env)) {
		cmd.Env = append(cmd.Env, k+"="+spec.Env[k])
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = gateR, stdout, stderr
	cmd.ExtraFiles = []*os.File{ackW}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	log := p.log.With("cluster_id", clusterID, "step_id", id, "step_name", spec.Name)
	// Checked here because exec reports a bad working directory as an
	// error of /bin/sh, which would mislead whoever reads it.
	err = checkWorkDir(cmd.Dir, spec.Dir == "")
	if err == nil {
		err = cmd.Start()
	}
	// The child has its copies; ours would keep the acknowledgement from
	// ever reading end of file.
	gateR.Close()
	ackW.Close()
	if err != nil {
		log.Warn("local step could not start", "err", err)
		// A record without a process, so that the failure is listed
		// under the step's name.
		if rerr := writeRecord(lock, dir, &rec); rerr != nil {
			return fmt.Errorf("start: %v (and recording the step: %w)", err, rerr)
		}
		return p.recordStartError(dir, err.Error())
	}
	pr := procRecord{PID: cmd.Process.Pid, PGID: cmd.Process.Pid, StartedAt: p.clock.Now(), Gated: true}
	tokens.record(&pr)
	// Read before anyone waits for the child: until then even a child
	// that has already exited is a zombie whose stat is still there.
	if p.procfs {
		if st, err := readProcStat(pr.PID); err == nil {
			pr.StartTicks = st.start
		}
	}
	rec.procRecord = pr
	// Reap in the background so that an ended step does not linger as the
	// server's zombie (after a restart its orphan is init's to reap), and
	// tell whoever listens that the cluster changed the moment it ends.
	go func() {
		_ = cmd.Wait() // the exit file, not the wrapper's status, is the outcome
		p.notify(clusterID)
	}()
	// The wrapper starts while its record is written and synced: the two
	// slow parts of a submission overlap.
	p.hook(hookStarted, id, pr.PID)
	if err := writeRecord(lock, dir, &rec); err != nil {
		// Without a record the step could never be watched or stopped;
		// the gate closes unopened and the wrapper exits.
		return fmt.Errorf("record the step: %w", err)
	}
	p.hook(hookRecorded, id, pr.PID)
	// The cluster may have ended since the claim: a termination records
	// the end and then stops every step that has a record, so a cluster
	// still running now will stop this one, and one that ended must not
	// get a step that nothing would stop.
	if c, err := p.readCluster(clusterID); err != nil || c.ended() {
		if err == nil {
			err = fmt.Errorf("cluster %s ended during the submission: %w", clusterID, provider.ErrNotReady)
		}
		return err
	}

	acked := make(chan struct{})
	go func() {
		io.Copy(io.Discard, ackR) // ends when the wrapper closes fd 3 or dies
		close(acked)
	}()
	// A failed write means the wrapper has already ended; the
	// acknowledgement's end of file says as much.
	_, _ = gateW.Write([]byte(tokens.gateLine()))
	gateW.Close()
	reason := "the wrapper ended before it ran the command (see stderr)"
	if !waitClosed(acked, p.startTimeout) {
		log.Warn("local step: the wrapper did not take the go line; killing it", "pid", pr.PID, "timeout", p.startTimeout.String())
		if err := p.signalGroup(pr, syscall.SIGKILL); err != nil {
			return fmt.Errorf("kill a stuck wrapper: %w", err)
		}
		if !waitClosed(acked, killTimeout) {
			return fmt.Errorf("wrapper %d outlived SIGKILL for %v", pr.PID, killTimeout)
		}
		reason = fmt.Sprintf("the wrapper did not take the go line within %v and was killed", p.startTimeout)
	}
	if hasRan(dir) {
		log.Info("local step started", "pid", pr.PID)
		return nil
	}
	// The caller gets this step's id, so it must be listed: as a failure
	// to start, not omitted as if it had never been submitted.
	log.Warn("local step could not start", "pid", pr.PID, "err", reason)
	return p.recordStartError(dir, reason)
}

func (p *Provider) recordStartError(dir, reason string) error {
	if err := writeFileAtomic(filepath.Join(dir, "start_error"), []byte(reason+"\n")); err != nil {
		return fmt.Errorf("start: %s (and recording that: %w)", reason, err)
	}
	return nil
}

func (p *Provider) hook(point, stepID string, pid int) {
	if p.submitHook != nil {
		p.submitHook(point, stepID, pid)
	}
}

// waitClosed waits for ch to close, for at most d. It waits on another
// process, not on anything of Berth's time, so it uses the wall clock:
// under a fake clock it would never end.
func waitClosed(ch <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
		return false
	}
}

// hasRan reports whether the wrapper took the go line: the ran marker.
func hasRan(dir string) bool {
	_, err := os.Lstat(filepath.Join(dir, "ran"))
	return err == nil
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// neverRan reports whether the step in dir never ran and never will, so
// that its name is free again. It must be called holding the step's lock,
// so that no submission of the step is under way (see claim): a step
// without a process in its record (or a gated one without the ran marker)
// is then one whose submitter died before opening its gate. If that
// wrapper is still alive it is deciding: it meets end of file or, if the
// go line reached the pipe before the crash, runs the step; settle waits
// to see which.
func (p *Provider) neverRan(dir string) (bool, error) {
	if exists(filepath.Join(dir, "start_error")) {
		return false, nil
	}
	pr, err := readProc(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		// Listed as failed; it may have run, so it is never replaced.
		return false, nil
	}
	if !pr.Gated || hasRan(dir) || exists(filepath.Join(dir, "exit")) {
		return false, nil
	}
	ran, err := p.settle(dir, pr)
	return !ran, err
}

// settle waits until a gated wrapper that has no ran marker has decided:
// it created the marker (it runs the step) or it ended (it never will).
// After its server's crash the gate is closed, so it decides at once; one
// that does not within startTimeout is stuck, and is killed. It reports
// whether the step ran.
func (p *Provider) settle(dir string, pr procRecord) (bool, error) {
	if p.waitDecided(dir, pr, p.startTimeout) {
		return hasRan(dir), nil
	}
	p.log.Warn("local step: a wrapper left by a crashed submission did not decide; killing it",
		"dir", dir, "pid", pr.PID, "timeout", p.startTimeout.String())
	if err := p.signalGroup(pr, syscall.SIGKILL); err != nil {
		return false, fmt.Errorf("kill the undecided wrapper %d: %w", pr.PID, err)
	}
	if !p.waitDecided(dir, pr, killTimeout) {
		return false, fmt.Errorf("wrapper %d outlived SIGKILL for %v", pr.PID, killTimeout)
	}
	return hasRan(dir), nil
}

// waitDecided polls, for at most d of wall-clock time (see waitClosed),
// until the wrapper has created the ran marker or ended.
func (p *Provider) waitDecided(dir string, pr procRecord, d time.Duration) bool {
	decided := func() bool { return hasRan(dir) || !p.alive(pr) }
	timeout := time.NewTimer(d)
	defer timeout.Stop()
	tick := time.NewTicker(settleTick)
	defer tick.Stop()
	for !decided() {
		select {
		case <-timeout.C:
			return decided()
		case <-tick.C:
		}
	}
	return true
}

// checkWorkDir checks the step's working directory, creating it first if
// it is the provider's default one.
func checkWorkDir(dir string, create bool) error {
	if create {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("working directory: %w", err)
		}
	}
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
// started. Steps this Provider has already seen finished for good come
// from its memory (see finishedSteps): a poll lists the steps directory
// and reads only the steps that may still change.
func (p *Provider) ListSteps(ctx context.Context, clusterID string) ([]provider.Step, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkClusterID(clusterID); err != nil {
		return nil, fmt.Errorf("list steps: %w", err)
	}
	// Shared against SubmitStep's exclusive lock: never see a step in the
	// middle of its submission, between its rename into place and its
	// wrapper's word that it ran.
	unlock, err := p.lockCluster(clusterID, syscall.LOCK_SH)
	if err != nil {
		if errors.Is(err, provider.ErrUnknownCluster) {
			p.finished.drop(clusterID)
		}
		return nil, fmt.Errorf("list steps: %w", err)
	}
	defer unlock()
	c, err := p.readCluster(clusterID)
	if err != nil {
		if errors.Is(err, provider.ErrUnknownCluster) {
			p.finished.drop(clusterID)
		}
		return nil, fmt.Errorf("list steps of cluster %s: %w", clusterID, err)
	}
	if !c.ended() {
		p.moveForgotten(c)
	}
	ids, err := p.stepIDs(clusterID)
	if err != nil {
		return nil, fmt.Errorf("list steps of cluster %s: %w", clusterID, err)
	}
	all, read := []listedStep(nil), ids
	if c.ended() {
		p.finished.drop(clusterID)
	} else {
		all, read = p.finished.lookup(c, ids)
	}
	var finished []listedStep
	for _, id := range read {
		v := p.readStep(c, id)
		if !v.listed {
			continue
		}
		l := listedStep{v.step, v.submitted, v.pgid}
		all = append(all, l)
		if v.final {
			finished = append(finished, l)
		}
	}
	// Still under the lock: no termination by this or another Provider
	// can come between the cluster's record read above and this.
	if !c.ended() {
		p.finished.add(c, finished)
	}
	slices.SortFunc(all, func(a, b listedStep) int {
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

// ForgetSteps moves the given steps, once they have ended for good and
// their process groups are empty, out of the cluster's steps directory into
// its ended one at the next ListSteps, which lists them no more: a poll
// reads the steps under way, not every step the cluster ever ran. The
// service forgets only steps whose end it has committed, and never asks
// about them again, so the move is for good; a submission of the same name
// still finds its step there and adopts it, and its logs stay readable.
// The move is not synced: one a crash undoes lists the step once more,
// as before.
func (p *Provider) ForgetSteps(clusterID string, stepIDs []string) {
	p.finished.forget(clusterID, stepIDs)
}

// moveForgotten moves the steps of running cluster c that ForgetSteps
// named and that can go (see finishedSteps.movable) into its ended
// directory. The caller holds the cluster's lock, so no claim of such a
// step runs meanwhile; two polls racing to move one step both succeed.
func (p *Provider) moveForgotten(c *clusterRecord) {
	ids := p.finished.movable(c)
	if len(ids) == 0 {
		return
	}
	ended := p.endedDir(c.ID)
	if err := os.MkdirAll(ended, 0o755); err != nil {
		p.log.Warn("local: cannot keep ended steps apart; they stay listed", "cluster_id", c.ID, "err", err)
		return
	}
	for _, id := range ids {
		err := os.Rename(filepath.Join(p.stepsDir(c.ID), id), filepath.Join(ended, id))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			p.log.Warn("local: cannot move an ended step; it stays listed", "cluster_id", c.ID, "step_id", id, "err", err)
		}
	}
}

// movedAside reports whether ForgetSteps moved the step among the ended.
func (p *Provider) movedAside(clusterID, id string) bool {
	return exists(filepath.Join(p.endedDir(clusterID), id))
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

// stepView is what readStep makes of a step's files.
type stepView struct {
	step      provider.Step
	submitted time.Time
	// listed is false for a step that never ran and never will, which is
	// reported as if it had never been submitted.
	listed bool
	// final says that no later read can answer differently, so that
	// ListSteps may keep the answer: the step has ended for good and
	// nothing is left that could still write its files.
	final bool
	// pgid is the step's process group, once it has one.
	pgid int
}

// readStep derives a step's state from its files. The order matters: a
// start error ends the step at once; a missing pid record, or a gate never
// opened, hides it; a cancel request wins over the exit code (a step that
// exits in its SIGTERM handler has not done its work); an exit code its
// wrapper wrote wins over liveness, and any other exit file counts for
// nothing.
func (p *Provider) readStep(c *clusterRecord, id string) stepView {
	v := p.deriveStep(c, id)
	// File times come from the kernel's coarse clock, StartedAt from ours:
	// never let the end come before the start.
	if s := &v.step; !s.EndedAt.IsZero() && s.EndedAt.Before(s.StartedAt) {
		s.EndedAt = s.StartedAt
	}
	return v
}

// deriveStep is readStep before its end time is clamped. What it calls
// final: a start error and an exit code, which are written once and
// atomically (and a step that has either is never cancelled or replaced
// afterwards); a cancelled step whose wrapper is dead and can no longer
// write an exit code; and a vanished step, or one whose exit file is not
// its wrapper's, whose process group is empty. (A process the step left
// behind that rewrites the exit file after the wrapper can change what a
// fresh read answers, but never into a success: see exitTokens.)
// An unreadable file is never final: the read may fail for a passing
// reason, such as too many open files.
func (p *Provider) deriveStep(c *clusterRecord, id string) stepView {
	dir := filepath.Join(p.stepsDir(c.ID), id)
	v := stepView{step: provider.Step{ID: id, State: berth.StepFailed}, listed: true}
	s := &v.step
	rec, err := readRecord(dir)
	if errors.Is(err, fs.ErrNotExist) {
		// A submission under way, or one whose submitter died before it
		// recorded the step and so before opening the gate: nothing ran.
		v.listed = false
		return v
	}
	if err != nil {
		s.Message = "unreadable step record: " + err.Error()
		return v
	}
	spec := rec.stepSpec
	s.Name, v.submitted = spec.Name, spec.SubmittedAt

	if msg, at, ok := readNote(filepath.Join(dir, "start_error")); ok {
		s.Message = "could not start: " + msg
		s.StartedAt, s.EndedAt = at, at
		v.final = true
		return v
	}
	if rec.PID == 0 {
		// The wrapper could not start, and the reason is not written yet
		// (or its submitter died first): nothing ran.
		v.listed = false
		return v
	}
	pr := rec.procRecord
	v.pgid = pr.PGID
	if err := pr.check(); err != nil {
		s.Message = "unreadable step record: " + err.Error()
		s.EndedAt = spec.SubmittedAt
		return v
	}
	if pr.Gated && !hasRan(dir) && !exists(filepath.Join(dir, "exit")) {
		// The gate is not open yet, or never will be: its submitter is
		// still at it or died before the wrapper's acknowledgement. Its
		// wrapper has ended without running the step or is about to
		// decide; if it turns out to run it, it shows up as running from
		// then on.
		v.listed = false
		return v
	}
	s.StartedAt = pr.StartedAt

	// An exit file the wrapper did not write counts as none: while the
	// wrapper lives the step is running, and the wrapper's own record
	// replaces the file when the step ends.
	exit, exitErr := readExit(dir, pr)
	alive, pending := false, false
	if !exit.ok && exitErr == nil {
		alive = p.alive(pr)
		if !alive {
			// The wrapper writes the code and then exits: look again, or
			// a step that just finished would read as vanished. An
			// exit.tmp seen first is a rename that the mv of a dead
			// wrapper of an earlier version may still make; without one,
			// no exit file can ever come.
			pending = exists(filepath.Join(dir, "exit.tmp"))
			exit, exitErr = readExit(dir, pr)
		}
	}
	if exit.ok {
		s.ExitCode = &exit.code
	}
	if _, cancelAt, ok := readNote(filepath.Join(dir, "cancelled")); ok {
		if alive {
			s.State, s.Message = berth.StepRunning, "cancelling"
			return v
		}
		s.State, s.Message = berth.StepCancelled, "cancelled"
		s.EndedAt = cancelAt
		if exit.ok && exit.at.Before(cancelAt) {
			s.EndedAt = exit.at
		}
		v.final = exit.ok || exitErr == nil && !pending
		return v
	}
	switch {
	case exitErr != nil:
		s.Message = "unreadable exit status: " + exitErr.Error()
		s.EndedAt = exit.at
	case exit.ok:
		s.EndedAt = exit.at
		v.final = true
		if exit.code == 0 {
			s.State = berth.StepSucceeded
			return v
		}
		s.Message = exitMessage(exit.code, spec.Argv)
	case alive:
		s.State = berth.StepRunning
	default:
		// Ended without a record of its own wrapper's: killed, or its
		// record was replaced by one the wrapper did not write.
		s.Message = MessageVanished
		if exit.forged {
			s.Message = MessageForgedExit
		}
		if c.ended() {
			s.Message += " (cluster " + c.State
			if c.Reason != "" {
				s.Message += ": " + c.Reason
			}
			s.Message += ")"
		}
		// What is left of the step's group could still write the output
		// that dates its end: only a group empty before that is read makes
		// the answer final.
		quiet := groupGone(pr)
		s.EndedAt = lastSignOfLife(dir, pr.StartedAt, c)
		v.final = quiet && !pending
	}
	return v
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
// waiting for the grace. Cancelling an ended step, or one that never ran,
// does nothing; cancelling one that is still stopping signals it again.
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
	lock, err := os.Open(dir)
	if err != nil {
		if p.movedAside(clusterID, stepID) {
			return nil // it has ended
		}
		return fmt.Errorf("cancel step %s on cluster %s: %w", stepID, clusterID, berth.ErrNotFound)
	}
	defer lock.Close()
	// A submission of the step that is under way ends first (it does not
	// need the cluster's lock to): what it leaves is what there is to stop.
	if ok, err := flockWithin(lock, syscall.LOCK_EX, p.stepLockWait); err != nil || !ok {
		if err == nil {
			err = fmt.Errorf("its directory has been locked for more than %v", p.stepLockWait)
		}
		return fmt.Errorf("cancel step %s: %w", stepID, err)
	}
	// A step that never ran has nothing to stop, and never will have.
	never, err := p.neverRan(dir)
	if err != nil {
		return fmt.Errorf("cancel step %s: %w", stepID, err)
	}
	if never {
		return nil
	}
	if v := p.readStep(c, stepID); v.step.State.Terminal() {
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
	if !exists(dir) {
		if !p.movedAside(clusterID, stepID) {
			return berth.Logs{}, fmt.Errorf("step logs of %s on cluster %s: %w", stepID, clusterID, berth.ErrNotFound)
		}
		dir = filepath.Join(p.endedDir(clusterID), stepID)
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
