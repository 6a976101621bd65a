package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	_ "modernc.org/sqlite" // the "sqlite" driver, the one Berth uses
)

// River's fetch timing for the burn-down. Its defaults (100ms between
// fetches, a poll each second) suit Postgres with LISTEN/NOTIFY; SQLite has
// no notifications, so River only learns of work by fetching, and with a
// 100ms cooldown 32 workers could run at most 320 jobs a second. 1ms is
// River's minimum cooldown; 10ms polls cover a fetch the cooldown swallowed.
const (
	riverFetchCooldown     = time.Millisecond
	riverFetchPollInterval = 10 * time.Millisecond
)

// noop is the River job of every measurement: no arguments, a worker that
// does nothing, so what is measured is River's own bookkeeping.
type noop struct{}

func (noop) Kind() string { return "noop" }

type noopWorker struct{ river.WorkerDefaults[noop] }

func (noopWorker) Work(context.Context, *river.Job[noop]) error { return nil }

// riverDB is one River database: a SQLite file opened as Berth opens its
// own (internal/store/sqlite: WAL, synchronous=FULL, busy_timeout 10s,
// foreign keys, IMMEDIATE transactions), with River's migrations applied.
type riverDB struct {
	db *sql.DB
}

func openRiver(ctx context.Context, root, name string) (*riverDB, error) {
	dir, err := os.MkdirTemp(root, name+"-")
	if err != nil {
		return nil, err
	}
	q := url.Values{
		"_txlock": {"immediate"},
		"_pragma": {"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(FULL)", "foreign_keys(1)"},
	}
	db, err := sql.Open("sqlite", filepath.Join(dir, "river.db")+"?"+q.Encode())
	if err != nil {
		return nil, err
	}
	// River's advice for SQLite (riversqlite's package documentation): one
	// connection, or its concurrent maintenance work fails with SQLITE_BUSY.
	// Berth too writes through one connection.
	db.SetMaxOpenConns(1)
	r := &riverDB{db: db}
	// A pragma the driver did not apply would make River's commits cheaper
	// than Berth's: check the ones that cost.
	var mode string
	var sync int
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		r.close()
		return nil, err
	}
	if err := db.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
		r.close()
		return nil, err
	}
	if mode != "wal" || sync != 2 {
		r.close()
		return nil, fmt.Errorf("river database: journal_mode %s, synchronous %d; want wal, 2 (FULL)", mode, sync)
	}
	m, err := rivermigrate.New(riversqlite.New(db), nil)
	if err != nil {
		r.close()
		return nil, err
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		r.close()
		return nil, fmt.Errorf("river migrations: %w", err)
	}
	return r, nil
}

// close closes the database; its directory goes with the suite's work.
func (r *riverDB) close() { _ = r.db.Close() }

// client is a River client of the database; with workers > 0 it works the
// default queue with that many workers once started.
func (r *riverDB) client(workers int) (*river.Client[*sql.Tx], error) {
	ws := river.NewWorkers()
	river.AddWorker(ws, noopWorker{})
	cfg := &river.Config{Workers: ws, Logger: quietLogger()}
	if workers > 0 {
		cfg.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: workers}}
		cfg.FetchCooldown, cfg.FetchPollInterval = riverFetchCooldown, riverFetchPollInterval
	}
	return river.NewClient(riversqlite.New(r.db), cfg)
}

// insertMany inserts n jobs in InsertMany calls of at most 1,000 (each its
// own transaction), one call after the other.
func insertMany(ctx context.Context, c *river.Client[*sql.Tx], n int) error {
	batch := make([]river.InsertManyParams, 1000)
	for i := range batch {
		batch[i] = river.InsertManyParams{Args: noop{}}
	}
	for done := 0; done < n; {
		k := min(len(batch), n-done)
		if _, err := c.InsertMany(ctx, batch[:k]); err != nil {
			return fmt.Errorf("river InsertMany: %w", err)
		}
		done += k
	}
	return nil
}

// riverBurnDown inserts n jobs, then starts a client with workers workers
// and times its start until River reports the n-th job completed (the
// completion is committed before River sends the event).
func (s *suite) riverBurnDown(ctx context.Context, workers int) error {
	key := fmt.Sprintf("river.burn%d", workers)
	n := s.opt.burnJobs
	r, err := openRiver(ctx, s.work, "river-burn")
	if err != nil {
		return err
	}
	defer r.close()
	ins, err := r.client(0)
	if err != nil {
		return err
	}
	s.logf("River burn-down, %d workers: inserting %d jobs", workers, n)
	if err := insertMany(ctx, ins, n); err != nil {
		return err
	}
	c, err := r.client(workers)
	if err != nil {
		return err
	}
	// A buffer for every event: River drops those a full channel cannot take.
	events, cancel := c.SubscribeConfig(&river.SubscribeConfig{
		ChanSize: n + 1000, Kinds: []river.EventKind{river.EventKindJobCompleted, river.EventKindJobFailed},
	})
	defer cancel()
	t0 := time.Now()
	if err := c.Start(ctx); err != nil {
		return err
	}
	defer func() {
		stop, done := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer done()
		_ = c.Stop(stop)
	}()
	limit := time.After(s.opt.burnLimit)
	for completed := 0; completed < n; {
		select {
		case e := <-events:
			if e.Kind != river.EventKindJobCompleted {
				return fmt.Errorf("river job %d: %s", e.Job.ID, e.Kind)
			}
			completed++
		case <-limit:
			return fmt.Errorf("river burn-down: %d of %d completed after %s", completed, n, s.opt.burnLimit)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	d := time.Since(t0)
	s.res.set(key+".jobs_per_s", perSecond(n, d))
	s.logf("River burn-down, %d workers: %d jobs in %s, %.0f jobs/s", workers, n, d.Round(time.Millisecond), perSecond(n, d))
	return nil
}

// riverInserts measures River's inserts as B2 measures Berth's
// submissions, each on a fresh database: Insert one at a time from one
// goroutine, Insert from many goroutines, and InsertMany in calls of 1,000.
func (s *suite) riverInserts(ctx context.Context) error {
	err := s.withRiverClient(ctx, "river-insert1", func(c *river.Client[*sql.Tx]) error {
		lat, n, d, err := forDuration(ctx, 1, s.opt.serialFor, func(ctx context.Context) error {
			_, err := c.Insert(ctx, noop{}, nil)
			return err
		})
		if err != nil {
			return err
		}
		s.setRate("river.insert1", n, d, lat)
		return nil
	})
	if err != nil {
		return err
	}
	err = s.withRiverClient(ctx, "river-insert64", func(c *river.Client[*sql.Tx]) error {
		lat, n, d, err := forDuration(ctx, s.opt.clients, s.opt.submitFor, func(ctx context.Context) error {
			_, err := c.Insert(ctx, noop{}, nil)
			return err
		})
		if err != nil {
			return err
		}
		s.setRate("river.insert64", n, d, lat)
		return nil
	})
	if err != nil {
		return err
	}
	return s.withRiverClient(ctx, "river-insertmany", func(c *river.Client[*sql.Tx]) error {
		t0 := time.Now()
		if err := insertMany(ctx, c, s.opt.batchJobs); err != nil {
			return err
		}
		d := time.Since(t0)
		s.res.set("river.insertmany.jobs_per_s", perSecond(s.opt.batchJobs, d))
		s.logf("river.insertmany: %d jobs in %s, %.0f jobs/s", s.opt.batchJobs, d.Round(time.Millisecond), perSecond(s.opt.batchJobs, d))
		return nil
	})
}

func (s *suite) withRiverClient(ctx context.Context, name string, f func(*river.Client[*sql.Tx]) error) error {
	r, err := openRiver(ctx, s.work, name)
	if err != nil {
		return err
	}
	defer r.close()
	c, err := r.client(0)
	if err != nil {
		return err
	}
	return f(c)
}
