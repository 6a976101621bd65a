// Package sqlite is the embedded Store: one SQLite file in WAL mode, through
// the pure-Go driver modernc.org/sqlite, so Berth needs no database server
// and no cgo.
//
// Writes go through a single connection. SQLite admits one writer at a time
// anyway; owning that connection means writers queue in database/sql, where
// the context is honoured, instead of spinning on SQLITE_BUSY, and prepared
// statements stay prepared. Transactions on it begin IMMEDIATE, so a read
// inside a write transaction can never fail to upgrade its lock when another
// process writes to the same file. Reads use a separate pool of read-only
// connections: in WAL mode they see the last committed state and never wait
// for the writer.
//
// synchronous=FULL makes every commit reach the disk before it returns: a
// submitted job survives an OS crash once the API has answered. That wait
// is most of what a submission costs, so submissions that arrive together
// share one commit (group.go).
//
// The loop's Lock is an flock on a file beside the database, <db>.lock
// (lock.go), so two servers never run two loops over one file.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/store"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// busyTimeoutMS is how long a connection waits for another process's lock
// before giving up with berth.ErrUnavailable.
const busyTimeoutMS = 10_000

// readConns bounds the read pool. Readers never block each other in WAL
// mode; the bound only caps memory and file descriptors.
const readConns = 8

// Store is the SQLite Store. It is safe for concurrent use.
type Store struct {
	log   *slog.Logger
	path  string
	write *sql.DB
	read  *sql.DB
	stmt  statements

	// creates feeds the group-commit loop; quit stops it and loopDone
	// says it has stopped.
	creates  chan *createReq
	quit     chan struct{}
	loopDone chan struct{}
	// ckpt is checkpointLoop's connection; written wakes it, ckptDone
	// says it has stopped (checkpoint.go).
	ckpt     *sql.DB
	written  chan struct{}
	ckptDone chan struct{}

	// lock is the loop's lock file while Lock holds it (lock.go); closed
	// says Close ran, so no lock is taken after it.
	lockMu sync.Mutex
	lock   *os.File
	closed bool

	closeOnce sync.Once
	closeErr  error
}

var _ store.Store = (*Store)(nil)

// ParseDSN turns a store URL from the configuration ("sqlite://berth.db",
// "sqlite:///var/lib/berth/berth.db") into a file path. The error wraps
// berth.ErrInvalid.
func ParseDSN(dsn string) (path string, err error) {
	rest, ok := strings.CutPrefix(dsn, "sqlite://")
	if !ok {
		return "", fmt.Errorf("%w: store %q: want sqlite://PATH", berth.ErrInvalid, dsn)
	}
	if err := checkPath(rest); err != nil {
		return "", fmt.Errorf("store %q: %w", dsn, err)
	}
	return rest, nil
}

// checkPath rejects what the driver would read as something other than a
// file name: a query string, a URI, or a private in-memory database (each
// connection of the pools would get its own).
func checkPath(path string) error {
	switch {
	case path == "":
		return fmt.Errorf("%w: empty database path", berth.ErrInvalid)
	case strings.ContainsAny(path, "?#"):
		return fmt.Errorf("%w: database path %q: '?' and '#' are not allowed", berth.ErrInvalid, path)
	case strings.HasPrefix(path, ":memory:") || strings.HasPrefix(path, "file:"):
		return fmt.Errorf("%w: database path %q: must name a file", berth.ErrInvalid, path)
	}
	return nil
}

// Open opens (creating if need be) the database file at path and brings its
// schema up to date.
func Open(ctx context.Context, path string, log *slog.Logger) (*Store, error) {
	if err := checkPath(path); err != nil {
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{log: log, path: path}

	// The writer is opened and migrated first: it switches the file to WAL
	// and creates the schema the readers will see.
	writeDSN := dsn(path, url.Values{
		"_txlock": {"immediate"},
		"_pragma": {
			fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS),
			"journal_mode(WAL)",
			"synchronous(FULL)",
			"foreign_keys(1)",
			// 64 MiB of pages (the default is 2 MiB): the indexes a
			// commit touches stay in memory as the tables grow, and a
			// batch of a thousand jobs does not spill to the WAL before
			// its commit.
			"cache_size(-65536)",
			// checkpointLoop checkpoints, not the commit (checkpoint.go).
			"wal_autocheckpoint(0)",
			// A statement that writes many rows inside a transaction keeps
			// the pages it changes in a statement journal, to undo it
			// alone should it fail; past 64 KiB that spills to a temporary
			// file, a write call per page. In memory it costs none, and
			// durability does not rest on it: the WAL is the journal.
			"temp_store(MEMORY)",
		},
	})
	w, err := sql.Open("sqlite", writeDSN)
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %v", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	s.write = w
	if err := w.PingContext(ctx); err != nil {
		_ = w.Close()
		return nil, s.fail(ctx, "open "+path, err)
	}
	if err := s.migrate(ctx); err != nil {
		_ = w.Close()
		return nil, err
	}

	readDSN := dsn(path, url.Values{
		"_pragma":     {fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS), "foreign_keys(1)"},
		"_query_only": {"1"},
	})
	r, err := sql.Open("sqlite", readDSN)
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("open sqlite store %s: %v", path, err)
	}
	r.SetMaxOpenConns(readConns)
	r.SetMaxIdleConns(readConns)
	s.read = r
	if err := r.PingContext(ctx); err != nil {
		_ = r.Close()
		_ = w.Close()
		return nil, s.fail(ctx, "open "+path+" for reading", err)
	}

	if err := s.stmt.prepare(ctx, w); err != nil {
		s.stmt.close()
		_ = r.Close()
		_ = w.Close()
		return nil, s.fail(ctx, "prepare statements", err)
	}
	c, err := sql.Open("sqlite", dsn(path, url.Values{
		"_pragma": {fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS), "synchronous(FULL)"},
	}))
	if err != nil {
		s.stmt.close()
		_ = r.Close()
		_ = w.Close()
		return nil, fmt.Errorf("open sqlite store %s: %v", path, err)
	}
	c.SetMaxOpenConns(1)
	s.ckpt = c
	s.creates = make(chan *createReq)
	s.quit = make(chan struct{})
	s.loopDone = make(chan struct{})
	s.written = make(chan struct{}, 1)
	s.ckptDone = make(chan struct{})
	go s.createLoop()
	go s.checkpointLoop()
	log.Debug("sqlite store open", "path", path)
	return s, nil
}

// dsn builds the driver's connection string: a plain file name, so the
// driver strips its own parameters before SQLite sees the name.
func dsn(path string, params url.Values) string {
	return path + "?" + params.Encode()
}

// Ping reports whether the database answers, on both pools.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.write.PingContext(ctx); err != nil {
		return s.fail(ctx, "ping writer", err)
	}
	if err := s.read.PingContext(ctx); err != nil {
		return s.fail(ctx, "ping reader", err)
	}
	return nil
}

// Installation returns the database's installation id, storing candidate
// as it the first time.
func (s *Store) Installation(ctx context.Context, candidate string) (string, error) {
	if _, err := s.write.ExecContext(ctx, `INSERT INTO installation (id) SELECT ? WHERE NOT EXISTS (SELECT 1 FROM installation)`, candidate); err != nil {
		return "", s.fail(ctx, "store installation", err)
	}
	var id string
	if err := s.write.QueryRowContext(ctx, `SELECT id FROM installation`).Scan(&id); err != nil {
		return "", s.fail(ctx, "read installation", err)
	}
	return id, nil
}

// Close closes the database and gives up the loop's lock. It may be
// called more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		// The group in flight is committed and answered first.
		close(s.quit)
		<-s.loopDone
		<-s.ckptDone
		s.stmt.close()
		// Readers first: the writer's close is the last one, which
		// checkpoints the WAL into the main file.
		err := errors.Join(s.ckpt.Close(), s.read.Close(), s.write.Close())
		if err != nil {
			s.closeErr = fmt.Errorf("sqlite: close: %v", err)
		}
		// The lock goes last, once nothing of this store can write.
		s.lockMu.Lock()
		s.closed = true
		lock := s.lock
		s.lockMu.Unlock()
		if lock != nil {
			s.closeErr = errors.Join(s.closeErr, s.unlock(lock))
		}
	})
	return s.closeErr
}

// readTx runs fn in a read transaction on the read pool, so that what fn
// reads in several queries (a job and its attempts) is one snapshot.
func (s *Store) readTx(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	tx, err := s.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return s.fail(ctx, op, err)
	}
	defer func() { _ = tx.Rollback() }()
	return fn(tx)
}

// writeTx runs fn in a write transaction and commits it when fn returns
// nil; any error rolls everything back.
func (s *Store) writeTx(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return s.fail(ctx, op, err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return s.fail(ctx, op+": commit", err)
	}
	s.wrote()
	return nil
}
