package memory

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/store"
	"github.com/berthhq/berth/internal/store/sqlite"
)

// TestSameAsSQLite runs random sequences of calls, with the edge cases
// the conformance suite does not list (nil and empty slices and maps,
// times in other zones, ties in every order, unknown ids, clusters whose
// CreatedAt moves, attempts out of order), against this store and the
// sqlite driver, and wants every answer the same: values, error kinds and
// public messages. The simulator stands in this store for sqlite, so what
// the service sees must not depend on which one it runs on.
func TestSameAsSQLite(t *testing.T) {
	for seed := range uint64(6) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			lite, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "berth.db"), nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = lite.Close() })
			d := &differ{t: t, rng: rand.New(rand.NewPCG(seed, 1)), mem: open(t, New()), lite: lite, seqs: map[int64]int64{}}
			for d.step = range 300 {
				d.do()
				if t.Failed() {
					t.Fatalf("stores differ at step %d of seed %d", d.step, seed)
				}
			}
		})
	}
}

type differ struct {
	t         *testing.T
	rng       *rand.Rand
	mem, lite store.Store
	step      int
	// Seqs of one job differ between the stores: SQLite's AUTOINCREMENT
	// burns one on an idempotency hit. Only their order is promised, so
	// the differ translates: seqs maps sqlite's Seq of a job to memory's,
	// and created lists the pairs in order.
	seqs    map[int64]int64
	created [][2]int64
	// ids are the jobs created, which most batches rewrite.
	ids []string
	// cursor is the last next cursor each store handed out.
	cursor [2]string
	keys   int
}

// toMem translates sqlite's Seq of a job into memory's; 0 stays 0, and a
// Seq of no job created becomes -1, which differs from any of memory's.
func (d *differ) toMem(seq int64) int64 {
	if seq == 0 {
		return 0
	}
	if m, ok := d.seqs[seq]; ok {
		return m
	}
	return -1
}

func (d *differ) jobsToMem(jobs []berth.Job) []berth.Job {
	for i := range jobs {
		jobs[i].Seq = d.toMem(jobs[i].Seq)
	}
	return jobs
}

func (d *differ) cursorToMem(c string) string {
	if c == "" {
		return ""
	}
	n, err := strconv.ParseInt(c, 10, 64)
	if err != nil {
		return "sqlite's cursor " + c
	}
	return fmt.Sprint(d.toMem(n))
}

// seqPair is a Seq to ask both stores for: of no job, or of one.
func (d *differ) seqPair() (mem, lite int64) {
	switch n := d.rng.IntN(len(d.created) + 2); n {
	case 0:
		return 0, 0
	case 1:
		return 1 << 40, 1 << 40
	default:
		p := d.created[n-2]
		return p[0], p[1]
	}
}

// same wants both stores to have answered alike: the same value, or
// errors of the same kind with the same public message.
func (d *differ) same(what string, mem, lite any, memErr, liteErr error) {
	d.t.Helper()
	if (memErr == nil) != (liteErr == nil) || berth.KindOf(memErr) != berth.KindOf(liteErr) || berth.Public(memErr) != berth.Public(liteErr) {
		d.t.Errorf("step %d, %s: error\n memory %v\n sqlite %v", d.step, what, memErr, liteErr)
		return
	}
	if !reflect.DeepEqual(mem, lite) {
		d.t.Errorf("step %d, %s: the answers differ\n%s", d.step, what, diff("", reflect.ValueOf(mem), reflect.ValueOf(lite)))
	}
}

// diff lists where two values that reflect.DeepEqual tells apart differ,
// one line per difference: path, memory's value, sqlite's.
func diff(path string, a, b reflect.Value) string {
	if a.IsValid() != b.IsValid() || a.IsValid() && a.Type() != b.Type() {
		return fmt.Sprintf("%s: %v | %v\n", path, a, b)
	}
	if !a.IsValid() || reflect.DeepEqual(a.Interface(), b.Interface()) {
		return ""
	}
	out := ""
	switch a.Kind() {
	case reflect.Interface, reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			return fmt.Sprintf("%s: %v | %v\n", path, a, b)
		}
		return diff(path, a.Elem(), b.Elem())
	case reflect.Struct:
		if a.Type() == reflect.TypeFor[time.Time]() {
			break
		}
		for i := range a.NumField() {
			out += diff(path+"."+a.Type().Field(i).Name, a.Field(i), b.Field(i))
		}
		return out
	case reflect.Slice, reflect.Array:
		if a.Kind() == reflect.Slice && a.IsNil() != b.IsNil() {
			return fmt.Sprintf("%s: nil %v | nil %v\n", path, a.IsNil(), b.IsNil())
		}
		if a.Len() != b.Len() {
			return fmt.Sprintf("%s: %d elements | %d\n", path, a.Len(), b.Len())
		}
		for i := range a.Len() {
			out += diff(fmt.Sprintf("%s[%d]", path, i), a.Index(i), b.Index(i))
		}
		return out
	case reflect.Map:
		if a.IsNil() != b.IsNil() {
			return fmt.Sprintf("%s: nil %v | nil %v\n", path, a.IsNil(), b.IsNil())
		}
	}
	return fmt.Sprintf("%s: %#v | %#v\n", path, a.Interface(), b.Interface())
}

// sameKind is same for calls whose errors only the log sees, where the
// two drivers word them apart: only the kind must match.
func (d *differ) sameKind(what string, memErr, liteErr error) {
	d.t.Helper()
	if (memErr == nil) != (liteErr == nil) || berth.KindOf(memErr) != berth.KindOf(liteErr) {
		d.t.Errorf("step %d, %s: error\n memory %v\n sqlite %v", d.step, what, memErr, liteErr)
	}
}

func (d *differ) do() {
	ctx := d.t.Context()
	r := d.rng
	switch n := r.IntN(100); {
	case n < 20:
		j := d.job(d.jobID())
		m, mc, me := d.mem.CreateJob(ctx, j)
		l, lc, le := d.lite.CreateJob(ctx, j)
		if mc && lc {
			d.ids = append(d.ids, j.ID)
			d.seqs[l.Seq] = m.Seq
			d.created = append(d.created, [2]int64{m.Seq, l.Seq})
		}
		l.Seq = d.toMem(l.Seq)
		d.same("CreateJob "+j.ID, []any{m, mc}, []any{l, lc}, me, le)
	case n < 40:
		b := d.batch()
		d.sameKind("Commit", d.mem.Commit(ctx, b), d.lite.Commit(ctx, b))
	case n < 47:
		id, at := d.jobID(), d.time()
		m, me := d.mem.RequestCancel(ctx, id, at)
		l, le := d.lite.RequestCancel(ctx, id, at)
		l.Seq = d.toMem(l.Seq)
		d.same("RequestCancel "+id, m, l, me, le)
	case n < 52:
		id := d.jobID()
		m, me := d.mem.GetJob(ctx, id)
		l, le := d.lite.GetJob(ctx, id)
		l.Seq = d.toMem(l.Seq)
		d.same("GetJob "+id, m, l, me, le)
	case n < 62:
		f := store.JobFilter{Limit: r.IntN(6) - 1, State: d.jobState(), Pool: d.pool()}
		if r.IntN(3) == 0 {
			f.Labels = d.labels()
		}
		fl := f
		switch r.IntN(5) {
		case 0:
			f.Cursor, fl.Cursor = d.cursor[0], d.cursor[1]
		case 1:
			m, l := d.seqPair()
			f.Cursor, fl.Cursor = fmt.Sprint(m), fmt.Sprint(l)
		case 2:
			f.Cursor = d.pick("-1", "0", "x", "1.5")
			fl.Cursor = f.Cursor
		}
		m, mn, me := d.mem.ListJobs(ctx, f)
		l, ln, le := d.lite.ListJobs(ctx, fl)
		if mn != "" && ln != "" {
			d.cursor = [2]string{mn, ln}
		}
		d.same(fmt.Sprintf("ListJobs %+v", f), []any{m, mn}, []any{d.jobsToMem(l), d.cursorToMem(ln)}, me, le)
	case n < 67:
		seq, liteSeq := d.seqPair()
		limit := r.IntN(6) - 1
		m, me := d.mem.JobsAfter(ctx, seq, limit)
		l, le := d.lite.JobsAfter(ctx, liteSeq, limit)
		d.same(fmt.Sprintf("JobsAfter %d %d", seq, limit), m, d.jobsToMem(l), me, le)
	case n < 72:
		m, me := d.mem.CancelRequests(ctx)
		l, le := d.lite.CancelRequests(ctx)
		d.same("CancelRequests", m, l, me, le)
	case n < 80:
		m, me := d.mem.Load(ctx)
		l, le := d.lite.Load(ctx)
		d.jobsToMem(l.Jobs)
		if len(l.Dormant) > 0 {
			ids := []string{d.jobID(), l.Dormant[d.rng.IntN(len(l.Dormant))].ID, d.jobID()}
			mj, mje := d.mem.GetJobs(ctx, ids)
			lj, lje := d.lite.GetJobs(ctx, ids)
			d.same(fmt.Sprintf("GetJobs %q", ids), mj, d.jobsToMem(lj), mje, lje)
		}
		l.MaxSeq = d.toMem(l.MaxSeq)
		d.same("Load", m, l, me, le)
	case n < 83:
		id := d.clusterID()
		m, me := d.mem.GetCluster(ctx, id)
		l, le := d.lite.GetCluster(ctx, id)
		d.same("GetCluster "+id, m, l, me, le)
	case n < 87:
		f := store.ClusterFilter{Pool: d.pool(), State: d.clusterState()}
		m, me := d.mem.ListClusters(ctx, f)
		l, le := d.lite.ListClusters(ctx, f)
		d.same(fmt.Sprintf("ListClusters %+v", f), m, l, me, le)
	case n < 92:
		id := d.clusterID()
		m, me := d.mem.ClusterAttempts(ctx, id)
		l, le := d.lite.ClusterAttempts(ctx, id)
		d.same("ClusterAttempts "+id, m, l, me, le)
	default:
		f := store.EventFilter{Limit: r.IntN(5) - 1}
		if r.IntN(2) == 0 {
			f.JobID = d.jobID()
		}
		if r.IntN(2) == 0 {
			f.ClusterID = d.clusterID()
		}
		m, me := d.mem.ListEvents(ctx, f)
		l, le := d.lite.ListEvents(ctx, f)
		d.same(fmt.Sprintf("ListEvents %+v", f), m, l, me, le)
	}
}

func (d *differ) pick(options ...string) string { return options[d.rng.IntN(len(options))] }

func (d *differ) jobID() string     { return fmt.Sprintf("job-%d", d.rng.IntN(25)) }
func (d *differ) clusterID() string { return fmt.Sprintf("cl-%d", d.rng.IntN(6)) }
func (d *differ) pool() string      { return d.pick("", "p", "q") }

func (d *differ) jobState() berth.JobState {
	if d.rng.IntN(2) == 0 {
		return ""
	}
	return berth.JobStates[d.rng.IntN(len(berth.JobStates))]
}

func (d *differ) clusterState() berth.ClusterState {
	if d.rng.IntN(2) == 0 {
		return ""
	}
	return berth.ClusterStates[d.rng.IntN(len(berth.ClusterStates))]
}

// time is zero now and then, has nanoseconds, ties with others often, and
// comes in another zone or with a monotonic reading at times.
func (d *differ) time() time.Time {
	switch d.rng.IntN(8) {
	case 0:
		return time.Time{}
	case 1:
		return time.Now()
	case 2:
		return t0.Add(time.Duration(d.rng.IntN(5)) * time.Second).In(time.FixedZone("X", 3600))
	}
	return t0.Add(time.Duration(d.rng.IntN(5))*time.Second + time.Duration(d.rng.IntN(3)))
}

func (d *differ) labels() map[string]string {
	switch d.rng.IntN(4) {
	case 0:
		return nil
	case 1:
		return map[string]string{}
	case 2:
		return map[string]string{"a": d.pick("", "x", "y")}
	}
	return map[string]string{"a": d.pick("x", "y"), "b": d.pick("x", "y")}
}

func (d *differ) strings() []string {
	switch d.rng.IntN(3) {
	case 0:
		return nil
	case 1:
		return []string{}
	}
	return []string{"spark-submit", d.pick("a", "b")}
}

func (d *differ) job(id string) berth.Job {
	r := d.rng
	j := berth.Job{
		ID: id, Pool: d.pick("p", "q"), Name: d.pick("", "n"), Priority: r.IntN(3), Affinity: d.pick("", "aff"),
		AffinityRequired: r.IntN(2) == 0, Retries: r.IntN(3), MaxInfraRetries: r.IntN(3),
		Timeout: berth.Duration(r.IntN(1000)), Resume: berth.Resume(d.pick("", string(berth.ResumeFromStart), string(berth.ResumeUnfinished))),
		Labels: d.labels(), State: berth.JobQueued, ClusterID: d.pick("", d.clusterID()),
		CreatedAt: d.time(), StartedAt: d.time(), EndedAt: d.time(), NotBefore: d.time(),
		UserFailures: r.IntN(2), InfraFailures: r.IntN(2), CancelRequested: r.IntN(2) == 0,
		Cost: r.Float64(), Seq: int64(r.IntN(10)),
		ExecutionRoleArn: d.pick("", "arn:aws:iam::123456789012:role/r"),
	}
	switch r.IntN(3) {
	case 0:
		j.Then = []berth.Hint{}
	case 1:
		j.Then = []berth.Hint{{Pool: d.pick("p", "q"), Jobs: 1 + r.IntN(2)}}
	}
	if r.IntN(4) > 0 {
		j.IdempotencyKey = fmt.Sprintf("k-%d", r.IntN(12))
	}
	if r.IntN(4) == 0 {
		j.State = berth.JobStates[r.IntN(len(berth.JobStates))]
	}
	if r.IntN(6) > 0 {
		j.Steps = []berth.JobStep{}
		for range r.IntN(3) {
			st := berth.JobStep{Step: berth.Step{Name: d.pick("", "s"), Args: d.strings(), Jar: d.pick("", "j.jar"), Dir: d.pick("", "d")}, State: berth.StepPending}
			switch r.IntN(3) {
			case 0:
				st.Env = map[string]string{}
			case 1:
				st.Env = map[string]string{"E": d.pick("", "1")}
			}
			switch r.IntN(3) {
			case 0:
				st.Properties = map[string]string{}
			case 1:
				st.Properties = map[string]string{"p": d.pick("", "1")}
			}
			j.Steps = append(j.Steps, st)
		}
	}
	// Attempts with distinct numbers, in any order; a job in the loop's
	// hands may have any.
	for _, n := range r.Perm(4)[:r.IntN(4)] {
		a := berth.Attempt{
			N: n + 1, ClusterID: d.clusterID(), State: berth.AttemptState(d.pick("running", "failed")),
			StartedAt: d.time(), EndedAt: d.time(), FirstStep: r.IntN(2), Cost: r.Float64(), JobID: d.pick("", "job-x"),
		}
		if r.IntN(3) > 0 {
			a.Steps = []berth.AttemptStep{}
			for i := range r.IntN(3) {
				s := berth.AttemptStep{Index: i, State: berth.StepRunning, ProviderID: d.pick("", "s-1"), StartedAt: d.time(), EndedAt: d.time(), Message: d.pick("", "m")}
				if r.IntN(2) == 0 {
					code := r.IntN(3)
					s.ExitCode = &code
				}
				a.Steps = append(a.Steps, s)
			}
		}
		j.Attempts = append(j.Attempts, a)
	}
	// Now and then a job the stores refuse: attempts and never started.
	if len(j.Attempts) > 0 && j.StartedAt.IsZero() && r.IntN(8) > 0 {
		j.StartedAt = t0
	}
	return j
}

// batch is a pass of the loop: mostly jobs that exist, rewritten, now and
// then one that does not or a bad cluster or pool, which fails it whole.
func (d *differ) batch() store.Batch {
	ctx := d.t.Context()
	r := d.rng
	var b store.Batch
	for range r.IntN(4) {
		id := d.jobID()
		if len(d.ids) > 0 && r.IntN(8) > 0 {
			id = d.ids[r.IntN(len(d.ids))]
		}
		j := d.job(id)
		// Keys stay as they are but now and then: the two stores tell a
		// key taken apart in other words, and a swap within one batch is
		// a conflict in memory only (see check).
		if cur, err := d.mem.GetJob(ctx, j.ID); err == nil {
			j.IdempotencyKey = cur.IdempotencyKey
			switch r.IntN(10) {
			case 0:
				d.keys++
				j.IdempotencyKey = fmt.Sprintf("fresh-%d", d.keys)
			case 1:
				j.IdempotencyKey = ""
			}
		}
		b.Jobs = append(b.Jobs, j)
	}
	for range r.IntN(3) {
		c := berth.Cluster{
			ID: d.clusterID(), Pool: d.pick("p", "q"), State: berth.ClusterStates[r.IntN(len(berth.ClusterStates))],
			ProviderID: d.pick("", "j-1"), Fallback: r.IntN(2) == 0, Slots: r.IntN(4), PricePerHour: r.Float64(),
			CreatedAt: d.time(), ReadyAt: d.time(), IdleSince: d.time(), EndedAt: d.time(),
			Reason: d.pick("", "r"), Capacity: r.IntN(2) == 0, EndsLost: r.IntN(2) == 0, Running: 3, Cost: 1.5,
		}
		if r.IntN(30) == 0 {
			c.ID = ""
		}
		b.Clusters = append(b.Clusters, c)
	}
	for range r.IntN(3) {
		b.Pools = append(b.Pools, berth.PoolState{
			Pool: d.pick("p", "q", "r"), CapacityFailures: r.IntN(3), FirstFailureAt: d.time(), FallbackUntil: d.time(),
			BlockedAt: d.time(), BlockedReason: d.pick("", "broken"), BlockedSpec: d.pick("", "f00"),
		})
		if r.IntN(30) == 0 {
			b.Pools[len(b.Pools)-1].Pool = ""
		}
	}
	if r.IntN(3) == 0 {
		b.Affinity = map[string]string{d.pick("a", "b"): d.clusterID()}
	}
	for range r.IntN(4) {
		ev := berth.Event{At: d.time(), Kind: d.pick("placed", "lost"), Message: d.pick("", "m"), Seq: 99}
		if r.IntN(3) > 0 {
			ev.JobID = d.jobID()
		}
		if r.IntN(2) == 0 {
			ev.ClusterID = d.clusterID()
		}
		b.Events = append(b.Events, ev)
	}
	return b
}
