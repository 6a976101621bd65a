package service

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/berthhq/berth/internal/berth"
)

// metrics are the service's Prometheus metrics. A nil registry makes them
// inert but still safe to update.
type metrics struct {
	jobs       *prometheus.GaugeVec
	clusters   *prometheus.GaugeVec
	freeSlots  *prometheus.GaugeVec
	submits    *prometheus.CounterVec
	attempts   *prometheus.CounterVec
	startDelay *prometheus.HistogramVec
	liveCost   *prometheus.GaugeVec
	endedCost  *prometheus.CounterVec
	illegal    *prometheus.CounterVec
	blocks     *prometheus.CounterVec
	blocked    *prometheus.GaugeVec
	strays     *prometheus.GaugeVec
	passTime   prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		jobs: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "berth_jobs", Help: "Jobs that have not ended, by pool and state (queued, running).",
		}, []string{"pool", "state"}),
		clusters: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "berth_clusters", Help: "Live clusters by pool and state.",
		}, []string{"pool", "state"}),
		freeSlots: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "berth_free_slots", Help: "Free slots on ready clusters, by pool.",
		}, []string{"pool"}),
		submits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_jobs_submitted_total", Help: "Jobs picked up by the loop, by pool.",
		}, []string{"pool"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_attempts_total", Help: "Attempts that ended, by pool and end reason.",
		}, []string{"pool", "reason"}),
		passTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "berth_loop_pass_seconds",
			Help: "Wall time of one pass of the loop: inputs applied, decisions, the commit, what it publishes.",
			// From 100µs, each bucket half again the last, to ~13 s: fine
			// enough to read a p99 of a few milliseconds.
			Buckets: prometheus.ExponentialBuckets(0.0001, 1.5, 30),
		}),
		startDelay: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "berth_job_start_latency_seconds",
			Help:    "Time from a job's submission to the start of its first attempt.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 18),
		}, []string{"pool"}),
		liveCost: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "berth_cluster_cost_live", Help: "Cost so far of the live clusters, by pool (price_per_hour units).",
		}, []string{"pool"}),
		endedCost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_cluster_cost_total", Help: "Cost of the clusters that ended, by pool (price_per_hour units).",
		}, []string{"pool"}),
		illegal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_illegal_moves_total", Help: "State changes the loop refused because the transition table forbids them (each is a bug), by kind (job, cluster).",
		}, []string{"kind"}),
		blocks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_pool_blocks_total", Help: "Times a pool was blocked by a permanent provider failure, by pool.",
		}, []string{"pool"}),
		blocked: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "berth_pool_blocked", Help: "1 while a pool is blocked by a permanent provider failure, else 0.",
		}, []string{"pool"}),
		strays: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "berth_pool_stray_clusters", Help: "Live clusters this installation started for a pool that Berth has no record of, at the last scan.",
		}, []string{"pool"}),
	}
	if reg != nil {
		reg.MustRegister(m.jobs, m.clusters, m.freeSlots, m.submits, m.attempts, m.startDelay, m.liveCost, m.endedCost, m.illegal, m.blocks, m.blocked, m.strays, m.passTime)
	}
	return m
}

func (m *metrics) submitted(pool string) { m.submits.WithLabelValues(pool).Inc() }

func (m *metrics) pass(took time.Duration) { m.passTime.Observe(took.Seconds()) }

func (m *metrics) illegalMove(kind string) { m.illegal.WithLabelValues(kind).Inc() }

func (m *metrics) poolBlocked(pool string) { m.blocks.WithLabelValues(pool).Inc() }

func (m *metrics) attemptEnded(pool string, r berth.Reason) {
	m.attempts.WithLabelValues(pool, string(r)).Inc()
}

func (m *metrics) jobStarted(pool string, d time.Duration) {
	m.startDelay.WithLabelValues(pool).Observe(d.Seconds())
}

func (m *metrics) clusterEnded(c berth.Cluster, now time.Time) {
	m.endedCost.WithLabelValues(c.Pool).Add(c.CostAt(now))
}

// observe sets the gauges from a freshly published view and what each
// pool's live clusters have cost so far.
func (m *metrics) observe(v view, live map[string]float64) {
	for name, ps := range v.pools {
		m.jobs.WithLabelValues(name, string(berth.JobQueued)).Set(float64(ps.Queued))
		m.jobs.WithLabelValues(name, string(berth.JobRunning)).Set(float64(ps.Running))
		for _, st := range berth.ClusterStates {
			if st.Terminal() {
				continue
			}
			m.clusters.WithLabelValues(name, string(st)).Set(float64(ps.Clusters[st]))
		}
		m.freeSlots.WithLabelValues(name).Set(float64(ps.FreeSlots))
		blocked := 0.0
		if ps.Blocked {
			blocked = 1
		}
		m.blocked.WithLabelValues(name).Set(blocked)
		m.strays.WithLabelValues(name).Set(float64(len(ps.Strays)))
		m.liveCost.WithLabelValues(name).Set(live[name])
	}
}
