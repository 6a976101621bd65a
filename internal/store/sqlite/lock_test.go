package sqlite

import (
	"bufio"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
)

// helperLockEnv names the database TestHelperHoldsLock locks.
const helperLockEnv = "BERTH_TEST_LOCK_DB"

// TestHelperHoldsLock is the other process of TestLockDiesWithItsProcess:
// it takes the lock, says so, and holds it until it is killed (or its
// parent dies and its stdin closes).
func TestHelperHoldsLock(t *testing.T) {
	path := os.Getenv(helperLockEnv)
	if path == "" {
		t.Skip("helper process for TestLockDiesWithItsProcess")
	}
	s := openAt(t, path)
	if _, err := s.Lock(t.Context()); err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("locked\n")
	_, _ = io.Copy(io.Discard, os.Stdin)
	t.Fatal("the lock holder was never killed")
}

// TestLockDiesWithItsProcess: another process's lock shuts this one out,
// and once that process is killed with SIGKILL, which runs none of its
// code, the lock is free: a crashed server never blocks the next one.
func TestLockDiesWithItsProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "berth.db")
	s := openAt(t, path)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	holder := exec.Command(exe, "-test.run=^TestHelperHoldsLock$")
	holder.Env = append(os.Environ(), helperLockEnv+"="+path)
	holder.Stderr = t.Output()
	if _, err := holder.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = holder.Process.Kill(); _ = holder.Wait() })

	locked := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "locked" {
				locked <- true
				return
			}
		}
		locked <- false
	}()
	select {
	case ok := <-locked:
		if !ok {
			t.Fatal("the lock holder ended without taking the lock")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the lock holder did not take the lock in time")
	}

	_, err = s.Lock(t.Context())
	if !errors.Is(err, berth.ErrConflict) || !strings.Contains(err.Error(), "another berth server holds the store") || !strings.Contains(err.Error(), path) {
		t.Fatalf("Lock while another process holds it: %v, want berth.ErrConflict naming %s", err, path)
	}
	if err := holder.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = holder.Wait()
	release, err := s.Lock(t.Context())
	if err != nil {
		t.Fatalf("Lock after the holder was killed: %v", err)
	}
	if err := release(); err != nil {
		t.Error(err)
	}
}

// TestLockThroughSymlink: a store opened through a symlink to the database
// meets the lock of one opened by its real name.
func TestLockThroughSymlink(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "berth.db")
	s := openAt(t, path)
	link := filepath.Join(dir, "link.db")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	viaLink := openAt(t, link)
	release, err := s.Lock(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if _, err := viaLink.Lock(t.Context()); !errors.Is(err, berth.ErrConflict) {
		t.Fatalf("Lock through a symlink while the real name holds it: %v, want berth.ErrConflict", err)
	}
}
