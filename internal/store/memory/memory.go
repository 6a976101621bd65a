// Package memory is a Store that keeps everything in the process's memory,
// for the simulator and for tests: nothing survives the process. It passes
// the same conformance suite as the sqlite driver (storetest), so the
// service runs on it exactly as on a database, only without parsing SQL or
// waiting for a disk.
//
// A DB is one database; Open gives a Store over it, and may be called again
// for another: stores on one DB share its data and its loop lock as two
// servers on one database file would. Closing a store and opening another
// on the same DB is how a simulation models a server that crashes and
// restarts: whatever a call returned before the crash is still there, since
// in memory a write is durable when it returns.
//
// Everything is plain maps and slices behind one mutex, with no goroutines.
// Callers never share memory with it: jobs go in and come out as deep
// copies, so mutating a job after CreateJob or Commit, or one that GetJob
// returned, changes nothing stored. Values come back in the shape the
// sqlite driver reads back (times in UTC, empty label maps nil, attempts in
// number order) and errors with its public messages, so that code cannot
// come to rely on a difference; a test runs random calls against both and
// wants the same answers. Only Seq values differ (SQLite skips some), as
// the Store promises their order alone.
//
// What the calls cost is what they touch: jobs are kept in Seq order in a
// slice, so JobsAfter costs its result and ListJobs stops at its page; the
// unfinished jobs and live clusters have indexes of their own, so Load
// costs what the loop starts from, not the history.
package memory

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/store"
)

// DB is one in-memory database. The zero value is not usable; call New.
type DB struct {
	mu sync.Mutex

	// bySeq holds every job in Seq order; the job at index i has Seq i+1,
	// as jobs are never deleted.
	bySeq []*jobEntry
	jobs  map[string]*jobEntry
	// keys maps an idempotency key to the job that holds it.
	keys map[string]*jobEntry
	// live holds the jobs that have not ended, and cancels those of them
	// with a cancel request.
	live    map[*jobEntry]struct{}
	cancels map[*jobEntry]struct{}
	// onCluster maps a cluster id to the jobs with an attempt on it.
	onCluster map[string]map[*jobEntry]struct{}

	clusters map[string]*clusterEntry
	// clusterOrder holds every cluster, oldest first (by CreatedAt, then
	// id), the order ListClusters returns.
	clusterOrder []*clusterEntry
	liveClusters map[*clusterEntry]struct{}

	pools    map[string]berth.PoolState
	affinity map[string]string
	// installation is the installation's id, once asked for.
	installation string

	// events is the event log in chunks of eventChunk, so that it grows
	// without ever being copied; nEvents counts them. eventsByJob and
	// eventsByCluster index it.
	events          [][]berth.Event
	nEvents         int
	eventsByJob     map[string][]int
	eventsByCluster map[string][]int

	// holder is the store holding the loop's lock, or nil; lockGen tells
	// one holding from the next, so that a late release of an earlier
	// one gives up nothing.
	holder  *Store
	lockGen uint64
}

// jobEntry is one stored job. job is the store's own copy, never handed
// out; its Seq, CreatedAt and CancelRequested are the store's.
type jobEntry struct {
	job berth.Job
}

type clusterEntry struct {
	c berth.Cluster
}

// New returns an empty database.
func New() *DB {
	return &DB{
		jobs:            map[string]*jobEntry{},
		keys:            map[string]*jobEntry{},
		live:            map[*jobEntry]struct{}{},
		cancels:         map[*jobEntry]struct{}{},
		onCluster:       map[string]map[*jobEntry]struct{}{},
		clusters:        map[string]*clusterEntry{},
		liveClusters:    map[*clusterEntry]struct{}{},
		pools:           map[string]berth.PoolState{},
		affinity:        map[string]string{},
		eventsByJob:     map[string][]int{},
		eventsByCluster: map[string][]int{},
	}
}

// Open returns a new store over the database, as a server opening it
// would. It cannot fail.
func (db *DB) Open() *Store {
	return &Store{db: db}
}

// Store is one handle on a DB. It is safe for concurrent use.
type Store struct {
	db *DB
	// closed is guarded by db.mu.
	closed bool
}

var _ store.Store = (*Store)(nil)

// errClosed is what enter reports for a closed store; failed turns it into
// berth.ErrUnavailable.
var errClosed = errors.New("the store is closed")

// enter starts a call: it fails when ctx has ended or the store is closed,
// and otherwise returns with db.mu held, for the caller to unlock.
func (s *Store) enter(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.db.mu.Lock()
	if s.closed {
		s.db.mu.Unlock()
		return errClosed
	}
	return nil
}

// failed wraps an error of enter with what was being done. Callers build
// op only on this path, so a call that succeeds formats nothing.
func failed(op string, err error) error {
	if err == errClosed {
		return &berth.Error{Kind: berth.ErrUnavailable, Op: "memory: " + op, Public: "the store is closed"}
	}
	return fmt.Errorf("memory: %s: %w", op, err)
}

// notFound is a named thing ("job job-1") that does not exist, in the words
// the sqlite driver uses.
func notFound(op, thing string) error {
	return &berth.Error{Kind: berth.ErrNotFound, Op: "memory: " + op, Public: thing + " not found"}
}

// Ping reports whether the store answers: it does until it is closed.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.enter(ctx); err != nil {
		return failed("ping", err)
	}
	s.db.mu.Unlock()
	return nil
}

// Installation returns the DB's installation id, storing candidate as it
// the first time.
func (s *Store) Installation(ctx context.Context, candidate string) (string, error) {
	if err := s.enter(ctx); err != nil {
		return "", failed("read installation", err)
	}
	defer s.db.mu.Unlock()
	if s.db.installation == "" {
		s.db.installation = candidate
	}
	return s.db.installation, nil
}

// Close closes this store and gives up the loop's lock if it holds it. The
// data stays in the DB for the next Open. It may be called more than once.
func (s *Store) Close() error {
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	s.closed = true
	if s.db.holder == s {
		s.db.holder = nil
	}
	return nil
}

// Lock takes the loop's lock on the DB; see store.Store. It never waits.
// The end of the process gives it up with everything else.
func (s *Store) Lock(ctx context.Context) (release func() error, err error) {
	if err := s.enter(ctx); err != nil {
		return nil, failed("lock", err)
	}
	db := s.db
	defer db.mu.Unlock()
	if db.holder != nil {
		return nil, &berth.Error{Kind: berth.ErrConflict, Op: "memory: lock",
			Public: "another berth server holds the store; stop it, or give this server another store"}
	}
	db.holder = s
	db.lockGen++
	gen := db.lockGen
	return func() error {
		db.mu.Lock()
		defer db.mu.Unlock()
		if db.lockGen == gen && db.holder == s {
			db.holder = nil
		}
		return nil
	}, nil
}
