package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/berthhq/berth/internal/berth"
)

// The loop's lock is an flock on a file beside the database, <db>.lock.
//
// Not a lock inside SQLite: every connection of both pools would have to
// respect it, and SQLite's own locks end with each transaction. Not an
// fcntl lock either: those belong to the process, so a second store opened
// by the same process would be granted the lock again. An flock belongs to
// the open file, so a second open conflicts whoever made it, and the kernel
// drops it when the file's last descriptor closes, which a process killed
// with SIGKILL does too: nothing is left to clean up.
//
// The file is opened close-on-exec (Go's default), so the processes the
// local provider starts for steps, which outlive the server on purpose,
// never inherit it. It is never removed: deleting it while another server
// has it open would let a third create a new file and lock that one.

// lockSuffix names the lock file after the database file.
const lockSuffix = ".lock"

// Lock takes the exclusive right to run the loop over this database; see
// store.Store. It never waits: a held lock is berth.ErrConflict at once.
func (s *Store) Lock(ctx context.Context) (release func() error, err error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: lock %s: %w", s.path, err)
	}
	// Named after the file itself, so that a server given a symlink to
	// the database meets the lock of one given its real name. SQLite
	// resolves symlinks the same way for its -wal and -shm files.
	db := s.path
	if real, err := filepath.EvalSymlinks(db); err == nil {
		db = real
	}
	path := db + lockSuffix
	s.lockMu.Lock()
	defer s.lockMu.Unlock()
	switch {
	case s.closed:
		return nil, fmt.Errorf("sqlite: lock %s: %w: store closed", s.path, berth.ErrUnavailable)
	case s.lock != nil:
		return nil, errLocked(s.path, path)
	}
	// Read-only is enough for flock, and lets a server running as another
	// user get the plain answer (held) rather than a permission error.
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("sqlite: lock %s: %w", s.path, err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errLocked(s.path, path)
		}
		return nil, fmt.Errorf("sqlite: lock %s: %w", path, err)
	}
	s.lock = f
	return func() error { return s.unlock(f) }, nil
}

// errLocked says who is at fault when the lock is taken.
func errLocked(db, lock string) error {
	return fmt.Errorf("sqlite: lock %s: %w: another berth server holds the store %s; stop it, or give this server another store",
		lock, berth.ErrConflict, db)
}

// unlock gives up the lock f, unless it was given up already (by an
// earlier release, or Close). Closing the file releases the flock.
func (s *Store) unlock(f *os.File) error {
	s.lockMu.Lock()
	defer s.lockMu.Unlock()
	if s.lock != f {
		return nil
	}
	s.lock = nil
	if err := f.Close(); err != nil {
		return fmt.Errorf("sqlite: unlock %s: %w", f.Name(), err)
	}
	return nil
}
