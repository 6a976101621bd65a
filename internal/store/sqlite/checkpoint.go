package sqlite

import (
	"context"
	"time"
)

// Checkpoints.
//
// In WAL mode a commit appends the pages it changed to the log; a
// checkpoint copies them back into the database file and syncs it. By
// default SQLite runs one inside the commit that takes the log past 1,000
// pages, on the writer: inside a pass of the loop, which then waits for
// it. The writer turns that off (wal_autocheckpoint 0) and checkpointLoop
// checkpoints on a connection of its own instead, at most every
// checkpointEvery while commits come. A PASSIVE checkpoint waits for no
// reader or writer: the writer goes on appending while it copies, and the
// log starts over once a checkpoint has copied all of it.
//
// Durability does not change: a commit is on disk once it is in the log.

// checkpointEvery bounds how often the log is checkpointed.
const checkpointEvery = 100 * time.Millisecond

// wrote tells checkpointLoop that a commit appended to the log. It never
// blocks.
func (s *Store) wrote() {
	select {
	case s.written <- struct{}{}:
	default:
	}
}

// checkpointLoop runs until Close.
func (s *Store) checkpointLoop() {
	defer close(s.ckptDone)
	for {
		select {
		case <-s.quit:
			return
		case <-s.written:
		}
		if _, err := s.ckpt.ExecContext(context.Background(), `PRAGMA wal_checkpoint(PASSIVE)`); err != nil {
			// The next commit tries again; meanwhile the log grows, which
			// costs disk, not correctness.
			s.log.Debug("sqlite checkpoint", "err", err)
		}
		select {
		case <-s.quit:
			return
		case <-time.After(checkpointEvery):
		}
	}
}
