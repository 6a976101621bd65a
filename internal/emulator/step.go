package emulator

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/berthhq/berth/internal/clock"
)

type step struct {
	id, name  string
	seq       int
	action    string
	jar       string
	mainClass string
	args      []string
	props     map[string]string

	state                   string
	created, started, ended time.Time
	// failReason, failMessage and failLog are the FailureDetails of a
	// FAILED step.
	failReason, failMessage, failLog string

	stdout, stderr *capBuffer
	// exitCode is the process's exit status; -1 before it exits, or when
	// a signal ended it.
	exitCode int
	pid      int

	// timer completes a jar step; gen tells a stale callback from the
	// current one.
	timer clock.Timer
	gen   int
}

// process is a running step process: the leader of its own process group,
// so that a signal reaches what it started too. It is used with e.mu
// held.
type process struct {
	cmd *exec.Cmd
	// reaped is set before the leader is reaped: from then on its pid,
	// the group's id, may be another process's.
	reaped bool
}

const (
	sigTerm = syscall.SIGTERM
	sigKill = syscall.SIGKILL
)

func (p *process) signal(sig syscall.Signal) {
	switch {
	case p.reaped:
	case groupSignals:
		// The group may be gone already.
		_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	default:
		_ = p.cmd.Process.Signal(sig)
	}
}

func (e *Emulator) addStep(c *cluster, sc wireStepConfig) *step {
	e.seq++
	j := sc.HadoopJarStep
	s := &step{
		id:        e.newID("s-", 13, upperAlnum),
		name:      sc.Name,
		seq:       e.seq,
		action:    actionOf(sc),
		jar:       j.Jar,
		mainClass: j.MainClass,
		args:      slices.Clone(j.Args),
		state:     StepPending,
		created:   e.clk.Now(),
		stdout:    &capBuffer{max: e.opts.MaxOutput},
		stderr:    &capBuffer{max: e.opts.MaxOutput},
		exitCode:  -1,
	}
	if len(j.Properties) > 0 {
		s.props = map[string]string{}
		for _, kv := range j.Properties {
			s.props[kv.Key] = kv.Value
		}
	}
	c.steps = append(c.steps, s)
	return s
}

// isCommandRunner is true of a step that runs its Args as a command.
func (s *step) isCommandRunner() bool { return path.Base(s.jar) == CommandRunner }

// startStep makes a pending step RUNNING: a command-runner.jar step
// starts its command, any other jar completes after JarStepTime.
func (e *Emulator) startStep(c *cluster, s *step) {
	s.state, s.started = StepRunning, e.clk.Now()
	e.log.Info("step running", "cluster", c.id, "step", s.id, "name", s.name)
	if !s.isCommandRunner() {
		s.gen++
		g := s.gen
		s.timer = e.afterFunc(e.opts.JarStepTime, func() {
			if s.gen != g || s.state != StepRunning {
				return
			}
			s.timer = nil
			e.finish(c, s, StepCompleted)
			e.settle(c)
		})
		return
	}
	if err := e.startProcess(c, s); err != nil {
		s.failReason, s.failMessage = "Unknown Error.", err.Error()
		fmt.Fprintln(s.stderr, err)
		e.finish(c, s, StepFailed)
	}
}

// startProcess runs the step's Args in the cluster's directory, argv as
// given (a shell only when the args say so), in a process group of its
// own, its output captured; a goroutine reaps it, and kills what is left
// of its group when it ends.
func (e *Emulator) startProcess(c *cluster, s *step) error {
	if len(s.args) == 0 {
		return errors.New("command-runner.jar needs Args: the command to run")
	}
	if c.dir == "" {
		dir, err := os.MkdirTemp(e.opts.WorkDir, "emr-"+c.id+"-")
		if err != nil {
			return fmt.Errorf("cannot make the cluster's working directory: %w", err)
		}
		c.dir = dir
	}
	cmd := exec.Command(s.args[0], s.args[1:]...)
	cmd.Dir = c.dir
	cmd.Stdout, cmd.Stderr = s.stdout, s.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// A process that left the group (setsid) could hold the output pipes
	// open, and the step RUNNING, long after the command ended.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("Cannot run program %q (in directory %q): %v", s.args[0], c.dir, err)
	}
	p := &process{cmd: cmd}
	s.pid = cmd.Process.Pid
	e.procs[s] = p
	e.procWG.Add(1)
	go func() {
		defer e.procWG.Done()
		exited := awaitExit(cmd.Process.Pid)
		e.mu.Lock()
		if exited {
			// What the command left running in its group ends with it,
			// as the step does.
			p.signal(sigKill)
		}
		p.reaped = groupSignals
		e.mu.Unlock()
		err := cmd.Wait()
		e.mu.Lock()
		defer e.mu.Unlock()
		e.exited(c, s, cmd.ProcessState, err)
	}()
	return nil
}

// exited records the end of a step's process: exit status 0 completes a
// running step and any other fails it; a step being cancelled is
// CANCELLED; a step that already ended (its cluster lost or terminated)
// keeps its state. Its logs follow.
func (e *Emulator) exited(c *cluster, s *step, ps *os.ProcessState, err error) {
	delete(e.procs, s)
	if e.closed {
		return
	}
	s.exitCode = -1
	var msg string
	if ps != nil {
		s.exitCode = ps.ExitCode()
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			msg = fmt.Sprintf("Command was terminated by signal %d (%s)", int(ws.Signal()), ws.Signal())
		} else {
			msg = fmt.Sprintf("Command exited with status %d", s.exitCode)
		}
	} else {
		msg = fmt.Sprintf("Command could not be waited for: %v", err)
	}
	switch s.state {
	case StepRunning:
		if s.exitCode == 0 {
			e.finish(c, s, StepCompleted)
		} else {
			s.failReason, s.failMessage = "Unknown Error.", msg
			e.finish(c, s, StepFailed)
		}
	case StepCancelPending:
		e.finish(c, s, StepCancelled)
	default:
		e.scheduleLogs(c, s)
	}
	e.settle(c)
}

// finish ends a step in state: its logs follow, and the failure of a step
// with an ActionOnFailure other than CONTINUE acts on the cluster. The
// caller settles the cluster.
func (e *Emulator) finish(c *cluster, s *step, state string) {
	s.state, s.ended = state, e.clk.Now()
	if state == StepFailed && c.in.LogURI != "" {
		s.failLog = "s3://" + e.logKeyPath(c, s, "stderr.gz")
	}
	e.log.Info("step ended", "cluster", c.id, "step", s.id, "state", state, "message", s.failMessage)
	e.scheduleLogs(c, s)
	if state != StepFailed {
		return
	}
	switch s.action {
	case ActionTerminateCluster, ActionTerminateJobFlow:
		if c.alive() {
			e.terminate(c, ReasonStepFailure, "Shut down as step failed", StepCancelled)
		}
	case ActionCancelAndWait:
		for _, o := range c.steps {
			if o.state == StepPending {
				o.state, o.ended = StepCancelled, s.ended
			}
		}
	}
}

// endRunning ends a running step in state from outside (its cluster
// terminating, a node lost): a process is killed, and the step's logs
// follow once it is reaped; a jar step's completion is called off.
func (e *Emulator) endRunning(c *cluster, s *step, state string, fail *[2]string) {
	s.state, s.ended = state, e.clk.Now()
	if fail != nil {
		s.failReason, s.failMessage = fail[0], fail[1]
		if c.in.LogURI != "" {
			s.failLog = "s3://" + e.logKeyPath(c, s, "stderr.gz")
		}
	}
	e.log.Info("step ended", "cluster", c.id, "step", s.id, "state", state, "message", s.failMessage)
	if p := e.procs[s]; p != nil {
		p.signal(sigKill)
		return
	}
	if s.timer != nil {
		s.gen++
		s.timer.Stop()
		s.timer = nil
	}
	e.scheduleLogs(c, s)
}

// cancel cancels step id of c with option opt (SEND_INTERRUPT: SIGTERM to
// its process group; TERMINATE_PROCESS: SIGKILL), and returns why it
// cannot, or "".
func (e *Emulator) cancel(c *cluster, id, opt string) string {
	s := c.step(id)
	if s == nil {
		return fmt.Sprintf("Step %s is not a step of cluster %s.", id, c.id)
	}
	sig := sigTerm
	if opt == CancelTerminateProcess {
		sig = sigKill
	}
	switch s.state {
	case StepPending:
		s.state, s.ended = StepCancelled, e.clk.Now()
		return ""
	case StepRunning:
		if p := e.procs[s]; p != nil {
			s.state = StepCancelPending
			p.signal(sig)
			return ""
		}
		e.endRunning(c, s, StepCancelled, nil)
		return ""
	case StepCancelPending:
		if p := e.procs[s]; p != nil && sig == sigKill {
			p.signal(sig)
		}
		return ""
	}
	return fmt.Sprintf("Step %s is %s: only PENDING and RUNNING steps can be cancelled.", id, s.state)
}

func (s *step) wire() wireStep {
	w := wireStep{
		ID:              s.id,
		Name:            s.name,
		Config:          wireHadoopStepConfig{Jar: s.jar, Properties: maps.Clone(s.props), MainClass: s.mainClass, Args: s.args},
		ActionOnFailure: s.action,
		Status: wireStepStatus{
			State:    s.state,
			Timeline: wireStepTimeline{CreationDateTime: at(s.created), StartDateTime: at(s.started), EndDateTime: at(s.ended)},
		},
	}
	if s.state == StepFailed {
		w.Status.FailureDetails = &wireFailureDetails{Reason: s.failReason, Message: s.failMessage, LogFile: s.failLog}
	}
	return w
}

// capBuffer keeps the first max bytes written to it. The process's output
// copier writes it while snapshots read it, hence the lock.
type capBuffer struct {
	mu  sync.Mutex
	b   []byte
	max int
}

func (b *capBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - len(b.b); room > 0 {
		b.b = append(b.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (b *capBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.b)
}
