package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/berthhq/berth/internal/berth"
)

// Group commit of submissions.
//
// With synchronous=FULL every commit waits for the disk, and that wait, not
// SQLite, is nearly all a submission costs. One goroutine owns submissions:
// it takes one, then every other that is already waiting, writes them all in
// one transaction and answers each after the one commit. Alone, a submission
// pays one fsync as before; under load, many share it. Every caller still
// hears back only after its job is on disk.
//
// Each call runs inside its own savepoint, so one that fails (a
// repeated id) is undone alone and the others still commit. A full disk
// may be the exception: when SQLite cannot undo the failed write alone it
// rolls back the whole transaction, and every submission of the group
// fails with berth.ErrUnavailable, none stored.

// maxGroup bounds one transaction, in jobs, so no submission waits
// behind an unbounded queue. A call with more jobs than that is a group
// alone.
const maxGroup = 128

// createReq is one CreateJobs call.
type createReq struct {
	ctx  context.Context
	jobs []newJob
	// held, if set, judges the job that holds a taken key (see
	// store.Store.CreateJobs).
	held func(i int, holder *berth.Job) error
	done chan createResult // buffered: the loop never waits for a caller
}

// op names the call in errors.
func (r *createReq) op() string {
	if len(r.jobs) == 1 {
		return "create job " + r.jobs[0].job.ID
	}
	return fmt.Sprintf("create %d jobs from %s", len(r.jobs), r.jobs[0].job.ID)
}

// newJob is one job of a call, encoded.
type newJob struct {
	// job is the caller's, or a copy where the store fills in its state:
	// a batch's jobs are not copied again.
	job    *berth.Job
	steps  string // as stored
	args   []any
	labels any
	// attempts are the upsertAttempts rows of attempts the new job
	// already carries (normally none).
	attempts [][]any
	// event is the insertEvents row of its queued event.
	event []any
}

type createResult struct {
	// jobs are in the call's order: the stored job on an idempotency
	// hit, only its Seq on an insert.
	jobs []berth.Submitted
	err  error
}

// submit hands a submission to the group loop and waits for its answer.
// When ctx ends while the submission is in the loop's hands, the job may
// still be stored: the caller's retry with the same idempotency key finds
// it.
func (s *Store) submit(ctx context.Context, r *createReq) ([]berth.Submitted, error) {
	op := r.op()
	select {
	case s.creates <- r:
	case <-ctx.Done():
		return nil, fmt.Errorf("sqlite: %s: %w", op, ctx.Err())
	case <-s.quit:
		return nil, &berth.Error{Kind: berth.ErrUnavailable, Op: "sqlite: " + op, Public: "the store is closed"}
	}
	select {
	case res := <-r.done:
		return res.jobs, res.err
	case <-ctx.Done():
		return nil, fmt.Errorf("sqlite: %s: %w (it may have been stored)", op, ctx.Err())
	}
}

// createLoop runs until Close.
func (s *Store) createLoop() {
	defer close(s.loopDone)
	for {
		select {
		case <-s.quit:
			return
		case r := <-s.creates:
			group, n := []*createReq{r}, len(r.jobs)
		more:
			for n < maxGroup {
				select {
				case r := <-s.creates:
					group = append(group, r)
					n += len(r.jobs)
				default:
					break more
				}
			}
			s.createGroup(group)
		}
	}
}

// createGroup writes a group of submissions in one transaction and answers
// each. The transaction does not run under any caller's context: one
// caller giving up must not undo the others' jobs.
func (s *Store) createGroup(group []*createReq) {
	ctx := context.Background()
	if len(group) > 1 && s.createMerged(ctx, group) {
		return
	}
	results := make([]createResult, len(group))
	failAll := func(err error) {
		for i, r := range group {
			if results[i].err == nil {
				results[i] = createResult{err: err}
			}
			r.done <- results[i]
		}
	}

	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		failAll(s.fail(ctx, "create jobs: begin", err))
		return
	}
	if len(group) == 1 {
		s.createAlone(ctx, tx, group[0])
		return
	}
	for i, r := range group {
		if err := r.ctx.Err(); err != nil {
			results[i] = createResult{err: fmt.Errorf("sqlite: create job %s: %w", r.jobs[0].job.ID, err)}
			continue
		}
		if _, err := tx.ExecContext(ctx, `SAVEPOINT create_job`); err != nil {
			_ = tx.Rollback()
			failAll(s.fail(ctx, "create jobs: savepoint", err))
			return
		}
		results[i] = s.insertJobs(ctx, tx, r)
		if results[i].err != nil {
			if _, err := tx.ExecContext(ctx, `ROLLBACK TO create_job`); err != nil {
				_ = tx.Rollback()
				var we *writeError
				if errors.As(results[i].err, &we) {
					// A write the disk did not take that SQLite cannot undo
					// alone rolls back the whole transaction, savepoint
					// and all: the group is lost for that reason.
					failAll(cannotWriteErr("create jobs", we))
					return
				}
				failAll(s.fail(ctx, "create jobs: rollback to savepoint", err))
				return
			}
		}
		if _, err := tx.ExecContext(ctx, `RELEASE create_job`); err != nil {
			_ = tx.Rollback()
			failAll(s.fail(ctx, "create jobs: release savepoint", err))
			return
		}
	}
	if err := tx.Commit(); err != nil {
		failAll(s.fail(ctx, "create jobs: commit", err))
		return
	}
	s.wrote()
	for i, r := range group {
		r.done <- results[i]
	}
}

// createMerged writes a group's calls as if they were one: all their jobs
// in the same multi-row statements, no savepoint each. Calls that arrive
// together nearly always all succeed, and then a group costs about what
// one call of its jobs would. It reports false, having written nothing
// and answered no one, when a call has given up or any call fails; then
// createGroup writes the calls one savepoint each, so that the failing
// call fails alone. A failed commit is not tried again that way: the
// commit may have reached the disk, so every call hears of the failure.
func (s *Store) createMerged(ctx context.Context, group []*createReq) bool {
	merged := &createReq{ctx: ctx}
	start := make([]int, len(group)) // of each call's jobs in merged
	owner := []int{}                 // the call of each job
	for k, r := range group {
		if r.ctx.Err() != nil {
			return false
		}
		start[k] = len(merged.jobs)
		merged.jobs = append(merged.jobs, r.jobs...)
		for range r.jobs {
			owner = append(owner, k)
		}
	}
	merged.held = func(i int, holder *berth.Job) error {
		r := group[owner[i]]
		if r.held == nil {
			return nil
		}
		return r.held(i-start[owner[i]], holder)
	}
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return false
	}
	res := s.insertJobs(ctx, tx, merged)
	if res.err != nil {
		_ = tx.Rollback()
		return false
	}
	if err := tx.Commit(); err != nil {
		err = s.fail(ctx, "create jobs: commit", err)
		for _, r := range group {
			r.done <- createResult{err: err}
		}
		return true
	}
	s.wrote()
	for k, r := range group {
		r.done <- createResult{jobs: res.jobs[start[k] : start[k]+len(r.jobs) : start[k]+len(r.jobs)]}
	}
	return true
}

// createAlone writes a call that has its transaction to itself, without
// the savepoint: a failure undoes the whole transaction, which is its
// alone. A savepoint over a batch of many jobs would keep a sub-journal
// of every page the batch changes.
func (s *Store) createAlone(ctx context.Context, tx *sql.Tx, r *createReq) {
	var res createResult
	if err := r.ctx.Err(); err != nil {
		res.err = fmt.Errorf("sqlite: create job %s: %w", r.jobs[0].job.ID, err)
	} else {
		res = s.insertJobs(ctx, tx, r)
	}
	if res.err != nil {
		_ = tx.Rollback()
		r.done <- res
		return
	}
	if err := tx.Commit(); err != nil {
		res = createResult{err: s.fail(ctx, "create jobs: commit", err)}
	}
	s.wrote()
	r.done <- res
}
