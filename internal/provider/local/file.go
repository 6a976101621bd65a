package local

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// maxLogBytes caps each stream StepLogs returns; the end of a log is the
// part that explains a failure.
const maxLogBytes = 1 << 20

// writeFileAtomic replaces path with data so that a reader sees the old
// content or the new, never a part, and the new survives a crash once this
// returns.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

// writeFileExclusive creates path with data unless it exists, reporting
// whether it did.
func writeFileExclusive(path string, data []byte) (bool, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err == nil, err
}

// syncDir makes the entries just added to or renamed in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// flock takes an flock on f (LOCK_EX or LOCK_SH), waiting for it. Closing
// f releases it, and so does the kernel when its holder dies.
func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// tryFlock takes an exclusive flock on f unless someone holds one; held
// says someone does.
func tryFlock(f *os.File) (held bool, err error) {
	err = flock(f, syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return true, nil
	}
	return false, err
}

// flockWithin takes an flock on f (LOCK_EX or LOCK_SH) if it can within d
// of wall-clock time, and reports whether it did. The wait is for another
// process or goroutine, not for anything of Berth's time (see waitClosed).
func flockWithin(f *os.File, how int, d time.Duration) (bool, error) {
	timeout := time.NewTimer(d)
	defer timeout.Stop()
	tick := time.NewTicker(settleTick)
	defer tick.Stop()
	for {
		err := flock(f, how|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return err == nil, err
		}
		select {
		case <-timeout.C:
			return false, nil
		case <-tick.C:
		}
	}
}

// readTail returns the last max bytes of the file at path; a missing file
// is empty.
func readTail(path string, max int64) (string, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if off := fi.Size() - max; off > 0 {
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			return "", err
		}
	}
	b, err := io.ReadAll(io.LimitReader(f, max))
	return string(b), err
}
