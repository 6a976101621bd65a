package sqlite

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/store"

	"modernc.org/sqlite"
)

// A full disk, for real: LimitPages caps the file at the pages it has, and
// a write that needs more fails in SQLite exactly as it does when the disk
// is full. Each write below carries more than the free room of those pages.
var huge = strings.Repeat("x", 256<<10)

// limitPages sets the database's page cap, failing the test if it cannot.
func limitPages(t *testing.T, s *Store, n int64) int64 {
	t.Helper()
	got, err := LimitPages(t.Context(), s, n)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// checkDiskFull fails t unless err says the store cannot write because the
// disk is full, as berth.ErrUnavailable and in the driver's words.
func checkDiskFull(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, berth.ErrUnavailable) || !strings.Contains(err.Error(), "the store cannot write: disk full") {
		t.Errorf("%s on a full disk: error %v, want berth.ErrUnavailable saying the store cannot write: disk full", what, err)
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		t.Errorf("%s on a full disk: the driver's error type leaks: %v", what, err)
	}
}

// TestDiskFull: on a full disk CreateJob and Commit fail with
// berth.ErrUnavailable and change nothing; once the disk has room they
// succeed on the same open store.
func TestDiskFull(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	kept, _, err := s.CreateJob(ctx, job("job-kept"))
	if err != nil {
		t.Fatal(err)
	}
	before, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	big := job("job-big")
	big.Steps[0].Args = []string{huge}
	running := kept
	running.State, running.ClusterID, running.StartedAt = berth.JobRunning, "cl-1", t0.Add(time.Second)
	running.Attempts = []berth.Attempt{{N: 1, ClusterID: "cl-1", State: berth.AttemptRunning, StartedAt: t0.Add(time.Second),
		Steps: []berth.AttemptStep{{Index: 0, State: berth.StepRunning}}}}
	// The cluster, pool state and affinity fit; the event does not, and
	// comes last: what was written before it must go too.
	batch := store.Batch{
		Clusters: []berth.Cluster{{ID: "cl-1", Pool: "small", State: berth.ClusterReady, Slots: 2, CreatedAt: t0}},
		Pools:    []berth.PoolState{{Pool: "small", CapacityFailures: 1}},
		Jobs:     []berth.Job{running},
		Affinity: map[string]string{"a": "cl-1"},
		Events:   []berth.Event{{At: t0, JobID: kept.ID, ClusterID: "cl-1", Kind: "placed", Message: huge}},
	}
	writes := []struct {
		name  string
		write func() error
	}{
		{"CreateJob", func() error { _, _, err := s.CreateJob(ctx, big); return err }},
		{"Commit", func() error { return s.Commit(ctx, batch) }},
	}

	unlimited := limitPages(t, s, 0)
	limitPages(t, s, 1)
	for _, w := range writes {
		checkDiskFull(t, w.name, w.write())
	}
	after, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(after, before) {
		t.Errorf("failed writes changed the state:\n got %+v\nwant %+v", after, before)
	}
	if evs, err := s.ListEvents(ctx, store.EventFilter{}); err != nil || len(evs) != 1 || evs[0].JobID != "job-kept" {
		t.Errorf("failed writes left events %+v (%v), want job-kept's queued event alone", evs, err)
	}
	if _, err := s.GetJob(ctx, big.ID); !errors.Is(err, berth.ErrNotFound) {
		t.Errorf("a failed submission was stored: %v", err)
	}

	limitPages(t, s, unlimited)
	for _, w := range writes {
		if err := w.write(); err != nil {
			t.Errorf("%s once the disk has room: %v", w.name, err)
		}
	}
	if _, err := s.GetJob(ctx, big.ID); err != nil {
		t.Errorf("the submission once the disk has room: %v", err)
	}
	if got, err := s.GetJob(ctx, kept.ID); err != nil || got.State != berth.JobRunning || len(got.Attempts) != 1 {
		t.Errorf("the commit once the disk has room: job %+v, %v", got, err)
	}
	if c, err := s.GetCluster(ctx, "cl-1"); err != nil || c.State != berth.ClusterReady {
		t.Errorf("the commit once the disk has room: cluster %+v, %v", c, err)
	}
}

// TestDiskFullGroup writes submissions that arrived together, as the
// group loop does, with one in the middle that does not fit. Whether
// SQLite can undo that one alone depends on the statement that failed;
// either way every submission is acknowledged and stored, or fails with
// berth.ErrUnavailable and is not.
func TestDiskFullGroup(t *testing.T) {
	tests := []struct {
		name string
		big  func(j *berth.Job)
		// lost says SQLite drops the whole transaction.
		lost bool
	}{
		{"its row does not fit", func(j *berth.Job) { j.Steps[0].Args = []string{huge} }, false},
		{"its attempt does not fit", func(j *berth.Job) {
			j.StartedAt = t0
			j.Attempts = []berth.Attempt{{N: 1, State: berth.AttemptRunning,
				Steps: []berth.AttemptStep{{Index: 0, State: berth.StepRunning, Message: huge}}}}
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTemp(t)
			ctx := t.Context()
			if _, _, err := s.CreateJob(ctx, job("job-kept")); err != nil {
				t.Fatal(err)
			}
			group := func(suffix string) (ids []string, errs []error) {
				t.Helper()
				big := job("job-big" + suffix)
				tt.big(&big)
				var reqs []*createReq
				for _, j := range []berth.Job{job("job-a" + suffix), big, job("job-b" + suffix)} {
					r, err := newCreateReq(ctx, []berth.Job{j})
					if err != nil {
						t.Fatal(err)
					}
					reqs = append(reqs, r)
					ids = append(ids, j.ID)
				}
				s.createGroup(reqs)
				for _, r := range reqs {
					errs = append(errs, (<-r.done).err)
				}
				return ids, errs
			}

			unlimited := limitPages(t, s, 0)
			limitPages(t, s, 1)
			ids, errs := group("")
			for i, err := range errs {
				_, getErr := s.GetJob(ctx, ids[i])
				switch {
				case err == nil && i == 1:
					t.Errorf("%s was stored on a full disk", ids[i])
				case err == nil && tt.lost:
					t.Errorf("%s acknowledged, though SQLite dropped the transaction", ids[i])
				case err == nil && getErr != nil:
					t.Errorf("%s acknowledged but not stored: %v", ids[i], getErr)
				case err != nil:
					checkDiskFull(t, ids[i], err)
					if !errors.Is(getErr, berth.ErrNotFound) {
						t.Errorf("%s failed but is stored (%v)", ids[i], getErr)
					}
				}
			}

			limitPages(t, s, unlimited)
			ids, errs = group("-again")
			for i, err := range errs {
				if err != nil {
					t.Errorf("%s once the disk has room: %v", ids[i], err)
				} else if _, err := s.GetJob(ctx, ids[i]); err != nil {
					t.Errorf("%s acknowledged once the disk has room, not stored: %v", ids[i], err)
				}
			}
		})
	}
}
