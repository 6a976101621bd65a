package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/store"
)

// The list answers. Lists are never null, so clients can range over them
// without a check.
type (
	jobList struct {
		Jobs []berth.Job `json:"jobs"`
		// NextCursor is "" on the last page.
		NextCursor string `json:"next_cursor"`
	}
	poolList struct {
		Pools []berth.PoolStatus `json:"pools"`
	}
	clusterList struct {
		Clusters []berth.Cluster `json:"clusters"`
	}
	eventList struct {
		Events []berth.Event `json:"events"`
	}
	status struct {
		Status string `json:"status"`
	}
	// The request and the answer of POST /v1/jobs/batch.
	batchRequest struct {
		Jobs []berth.JobSpec `json:"jobs"`
	}
	batchAnswer struct {
		Jobs []berth.Submitted `json:"jobs"`
	}
)

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// pathID returns the {id} of the path. An id that berth could not have made
// names nothing, so it is a 404 without asking the service.
func pathID(r *http.Request, what string) (string, error) {
	id := r.PathValue("id")
	if !berth.ValidID(id) {
		return "", &httpError{http.StatusNotFound, "not_found", what + " " + truncate(id, 80) + " not found"}
	}
	return id, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func (s *server) submit(w http.ResponseWriter, r *http.Request) error {
	var spec berth.JobSpec
	if err := s.decodeBody(w, r, &spec); err != nil {
		return err
	}
	job, created, err := s.svc.Submit(r.Context(), spec)
	if err != nil {
		return err
	}
	if !created {
		return s.reply(w, http.StatusOK, job)
	}
	w.Header().Set("Location", "/v1/jobs/"+job.ID)
	return s.reply(w, http.StatusCreated, job)
}

// submitBatch stores up to berth.MaxBatch jobs in one write, all or none:
// 200 with each job in the request's order, created true or false.
func (s *server) submitBatch(w http.ResponseWriter, r *http.Request) error {
	var req batchRequest
	if err := s.decodeBodyMax(w, r, &req, s.maxBody*batchBodyFactor); err != nil {
		return err
	}
	out, err := s.svc.SubmitBatch(r.Context(), req.Jobs)
	if err != nil {
		return err
	}
	return s.reply(w, http.StatusOK, batchAnswer{Jobs: out})
}

func (s *server) listJobs(w http.ResponseWriter, r *http.Request) error {
	q := parseQuery(r)
	f := q.jobFilter()
	if q.err != nil {
		return q.err
	}
	jobs, next, err := s.svc.Jobs(r.Context(), f)
	if err != nil {
		return err
	}
	return s.reply(w, http.StatusOK, jobList{Jobs: orEmpty(jobs), NextCursor: next})
}

func (s *server) getJob(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "job")
	if err != nil {
		return err
	}
	q := parseQuery(r)
	wait := q.duration("wait", MaxWait)
	if q.err != nil {
		return q.err
	}
	var job berth.Job
	if wait > 0 {
		// A long poll outlives an ordinary write deadline; lift it for this
		// response (servers or writers that cannot are left as they are).
		_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
		job, err = s.svc.WaitJob(r.Context(), id, wait)
	} else {
		job, err = s.svc.Job(r.Context(), id)
	}
	if err != nil {
		return err
	}
	return s.reply(w, http.StatusOK, job)
}

func (s *server) cancelJob(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "job")
	if err != nil {
		return err
	}
	job, err := s.svc.Cancel(r.Context(), id)
	if err != nil {
		return err
	}
	return s.reply(w, http.StatusOK, job)
}

func (s *server) jobLogs(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "job")
	if err != nil {
		return err
	}
	q := parseQuery(r)
	attempt := q.integer("attempt", 0, 0, 1<<30)
	step := q.integer("step", 0, 0, berth.MaxSteps-1)
	if q.err != nil {
		return q.err
	}
	logs, err := s.svc.JobLogs(r.Context(), id, attempt, step)
	if err != nil {
		return err
	}
	return s.reply(w, http.StatusOK, logs)
}

func (s *server) jobEvents(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "job")
	if err != nil {
		return err
	}
	events, err := s.svc.JobEvents(r.Context(), id)
	if err != nil {
		return err
	}
	return s.reply(w, http.StatusOK, eventList{Events: orEmpty(events)})
}

func (s *server) listPools(w http.ResponseWriter, r *http.Request) error {
	pools, err := s.svc.Pools(r.Context())
	if err != nil {
		return err
	}
	return s.reply(w, http.StatusOK, poolList{Pools: orEmpty(pools)})
}

func (s *server) getPool(w http.ResponseWriter, r *http.Request) error {
	pool, err := s.svc.Pool(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return s.reply(w, http.StatusOK, pool)
}

func (s *server) unblockPool(w http.ResponseWriter, r *http.Request) error {
	pool, err := s.svc.Unblock(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return s.reply(w, http.StatusOK, pool)
}

func (s *server) listClusters(w http.ResponseWriter, r *http.Request) error {
	q := parseQuery(r)
	f := store.ClusterFilter{Pool: q.str("pool"), State: state(q, "state", "cluster", berth.ClusterStates)}
	if q.err != nil {
		return q.err
	}
	clusters, err := s.svc.Clusters(r.Context(), f)
	if err != nil {
		return err
	}
	return s.reply(w, http.StatusOK, clusterList{Clusters: orEmpty(clusters)})
}

func (s *server) getCluster(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "cluster")
	if err != nil {
		return err
	}
	c, err := s.svc.Cluster(r.Context(), id)
	if err != nil {
		return err
	}
	c.Attempts, c.Events = orEmpty(c.Attempts), orEmpty(c.Events)
	return s.reply(w, http.StatusOK, c)
}

// clusterAction serves drain, terminate and kill, which differ only in the
// service method they call.
func (s *server) clusterAction(do func(Service, context.Context, string) (berth.Cluster, error)) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		id, err := pathID(r, "cluster")
		if err != nil {
			return err
		}
		c, err := do(s.svc, r.Context(), id)
		if err != nil {
			return err
		}
		return s.reply(w, http.StatusOK, c)
	}
}

// healthz answers while the process serves at all: liveness, not
// readiness.
func (s *server) healthz(w http.ResponseWriter, r *http.Request) error {
	return s.reply(w, http.StatusOK, status{"ok"})
}

func (s *server) readyz(w http.ResponseWriter, r *http.Request) error {
	err := s.svc.Ready(r.Context())
	switch {
	case err == nil:
		return s.reply(w, http.StatusOK, status{"ready"})
	case errors.Is(err, berth.ErrUnavailable) && berth.Public(err) != "":
		s.log.Debug("not ready", "err", err)
		return &httpError{http.StatusServiceUnavailable, "unavailable", berth.Public(err)}
	default:
		// Whatever else is wrong, the answer to "ready?" is no.
		s.log.Warn("not ready", "err", err)
		return &httpError{http.StatusServiceUnavailable, "unavailable", "not ready"}
	}
}
