package local

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// procRecord is the process part of a step's record: which process leads
// the step, and enough to tell it from a later process that got the same
// pid.
type procRecord struct {
	PID  int `json:"pid"`
	PGID int `json:"pgid"`
	// StartTicks is field 22 of /proc/<pid>/stat (clock ticks after boot)
	// at launch; 0 when /proc could not say.
	StartTicks uint64    `json:"start_ticks,omitempty"`
	StartedAt  time.Time `json:"started_at"`
	// Gated says the wrapper waits for the go line and leaves the ran
	// marker. Records without it come from wrappers that ran their step
	// at once, so their steps are taken to have run.
	Gated bool `json:"gated,omitempty"`
	// OKHash and FailHash are the SHA-256 (hex) of the exit tokens the
	// wrapper got through its gate (see exitTokens): an exit file is
	// believed only if it holds the token whose hash matches its outcome.
	OKHash   string `json:"ok_hash,omitempty"`
	FailHash string `json:"fail_hash,omitempty"`
}

// readProc reads the process of the step in stepDir: fs.ErrNotExist when
// its record is not written or names no process (its wrapper could not
// start).
func readProc(stepDir string) (procRecord, error) {
	r, err := readRecord(stepDir)
	if err == nil && r.PID == 0 {
		err = fmt.Errorf("step record without a process: %w", fs.ErrNotExist)
	}
	if err != nil {
		return procRecord{}, err
	}
	return r.procRecord, r.check()
}

// check refuses a record whose numbers the provider must never signal: a
// pgid of 0 or 1 would make kill(-pgid) hit the server's own group or
// every process.
func (r procRecord) check() error {
	if r.PID <= 1 || r.PGID <= 1 {
		return fmt.Errorf("read step record: implausible pid %d / pgid %d", r.PID, r.PGID)
	}
	return nil
}

// gone reports whether a read of /proc/<pid> failed because the process
// is gone: ENOENT once it has been reaped, ESRCH when it dies during the
// read.
func gone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH)
}

// procStat is the part of /proc/<pid>/stat the provider needs.
type procStat struct {
	state byte
	start uint64
}

func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	return parseProcStat(string(b))
}

// parseProcStat reads "pid (comm) state ppid ...". The command name may
// hold spaces and parentheses, so fields are counted from its last ')'.
func parseProcStat(s string) (procStat, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("parse /proc stat: no command name")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state), so field n is f[n-3].
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("parse /proc stat: %d fields", len(f)+2)
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("parse /proc stat start time: %w", err)
	}
	return procStat{state: f[0][0], start: start}, nil
}

// alive reports whether the step's leader still runs: its group answers
// signal 0, and /proc (where there is one) shows the same process, not a
// zombie and not a newer process under a reused pid.
func (p *Provider) alive(r procRecord) bool {
	if err := syscall.Kill(-r.PGID, 0); err != nil {
		// ESRCH: the group is gone. EPERM: the number now belongs to
		// someone else's processes.
		return false
	}
	if !p.procfs {
		return true
	}
	st, err := readProcStat(r.PID)
	if err != nil {
		// Gone between the two checks, or unreadable: either way not a
		// process this step can be said to be running in.
		return false
	}
	if r.StartTicks != 0 && st.start != r.StartTicks {
		return false
	}
	return st.state != 'Z' && st.state != 'X' && st.state != 'x'
}

// signalGroup sends sig to the step's process group, unless the group's
// number now leads a different process: then the step's group is long gone
// and the signal would hit a stranger. A group that no longer exists is
// not an error.
func (p *Provider) signalGroup(r procRecord, sig syscall.Signal) error {
	if r.PGID <= 1 || r.PGID == syscall.Getpgrp() {
		return fmt.Errorf("refusing to signal process group %d", r.PGID)
	}
	if p.procfs && r.StartTicks != 0 {
		st, err := readProcStat(r.PGID)
		if err == nil && st.start != r.StartTicks {
			return nil
		}
		if err != nil && !gone(err) {
			return fmt.Errorf("check process group %d: %w", r.PGID, err)
		}
	}
	err := syscall.Kill(-r.PGID, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("signal process group %d: %w", r.PGID, err)
	}
	return nil
}
