package sqlite

import (
	"context"
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
// Each submission runs inside its own savepoint, so one that fails (a
// repeated id) is undone alone and the others still commit. A full disk
// may be the exception: when SQLite cannot undo the failed write alone it
// rolls back the whole transaction, and every submission of the group
// fails with berth.ErrUnavailable, none stored.

// maxGroup bounds one transaction, so no submission waits behind an
// unbounded queue.
const maxGroup = 128

type createReq struct {
	ctx    context.Context
	job    berth.Job
	args   []any
	labels any
	// attempts are the upsertAttempt arguments of attempts the new job
	// already carries (normally none).
	attempts [][]any
	done     chan createResult // buffered: the loop never waits for a caller
}

type createResult struct {
	// job is the stored job on an idempotency hit; on an insert only its
	// Seq is set.
	job     berth.Job
	created bool
	err     error
}

// submit hands a submission to the group loop and waits for its answer.
// When ctx ends while the submission is in the loop's hands, the job may
// still be stored: the caller's retry with the same idempotency key finds
// it.
func (s *Store) submit(ctx context.Context, r *createReq) (createResult, error) {
	select {
	case s.creates <- r:
	case <-ctx.Done():
		return createResult{}, fmt.Errorf("sqlite: create job %s: %w", r.job.ID, ctx.Err())
	case <-s.quit:
		return createResult{}, &berth.Error{Kind: berth.ErrUnavailable, Op: "sqlite: create job " + r.job.ID, Public: "the store is closed"}
	}
	select {
	case res := <-r.done:
		return res, res.err
	case <-ctx.Done():
		return createResult{}, fmt.Errorf("sqlite: create job %s: %w (it may have been stored)", r.job.ID, ctx.Err())
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
			group := []*createReq{r}
		more:
			for len(group) < maxGroup {
				select {
				case r := <-s.creates:
					group = append(group, r)
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
	for i, r := range group {
		if err := r.ctx.Err(); err != nil {
			results[i] = createResult{err: fmt.Errorf("sqlite: create job %s: %w", r.job.ID, err)}
			continue
		}
		if _, err := tx.ExecContext(ctx, `SAVEPOINT create_job`); err != nil {
			_ = tx.Rollback()
			failAll(s.fail(ctx, "create jobs: savepoint", err))
			return
		}
		results[i] = s.insertJob(ctx, tx, r)
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
	for i, r := range group {
		r.done <- results[i]
	}
}
