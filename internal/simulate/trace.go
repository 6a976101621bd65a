package simulate

import (
	"cmp"
	"math"
	"slices"
	"time"

	"github.com/berthhq/berth/internal/workload"
)

// Trace is what one policy did with a workload: every cluster it paid
// for, every attempt of every job, and when each pipeline instance ended.
// Every policy produces one; the metrics and the timeline are drawn from
// it alone, so that policies are measured the same way. Times are offsets
// from the start of the run.
type Trace struct {
	Policy   string
	Clusters []Cluster
	Jobs     []Job
	// Instances holds each pipeline instance's arrival and end (its last
	// job's end; -1 when it never ended).
	Instances []InstanceSpan
	// Interventions counts the times a person had to act: recreate a
	// lost cluster and clear its failed tasks.
	Interventions int
	// ETAErrors are, for the berth policy, how far the start the service
	// estimated for each job that waited (read just after its submission)
	// was from its real start, in order; the baselines estimate nothing.
	ETAErrors []time.Duration
}

// ETAAccuracy is the 50th and 90th percentile of the ETA errors, and
// how many jobs they are over.
func (t *Trace) ETAAccuracy() (p50, p90 time.Duration, n int) {
	return quantile(t.ETAErrors, 0.5), quantile(t.ETAErrors, 0.9), len(t.ETAErrors)
}

// Cluster is one cluster a policy paid for.
type Cluster struct {
	ID   string
	Pool string
	// Requested is when it was asked for (billing starts), Ready when it
	// could run jobs (-1 if never), Ended when billing stopped.
	Requested, Ready, Ended time.Duration
	// Lost is set when it ended by a spot reclaim.
	Lost  bool
	Slots int
	Cost  float64
}

// Job is one job of the workload as a policy ran it.
type Job struct {
	Key  workload.JobKey
	Pool string
	// Submitted is when the job was handed to the scheduler: when its
	// phase could start.
	Submitted time.Duration
	Attempts  []Attempt
	// Succeeded is set when its last attempt succeeded.
	Succeeded bool
}

// Attempt is one run of a job on one cluster.
type Attempt struct {
	Cluster    string
	Start, End time.Duration
	// Lost is set when the attempt ended with its cluster.
	Lost bool
}

// InstanceSpan is one pipeline instance's arrival and end.
type InstanceSpan struct {
	Pipeline string
	N        int
	Arrival  time.Duration
	End      time.Duration
}

// Result is one policy's line of the table: the keys of `berth sim -o
// json`.
type Result struct {
	Cost          float64  `json:"cost"`
	ClusterHours  float64  `json:"cluster_hours"`
	IdleFraction  float64  `json:"idle_fraction"`
	LatencyMean   Duration `json:"latency_mean"`
	LatencyP95    Duration `json:"latency_p95"`
	WaitP50       Duration `json:"wait_p50"`
	WaitP95       Duration `json:"wait_p95"`
	Makespan      Duration `json:"makespan"`
	Interventions int      `json:"interventions"`
	JobsLost      int      `json:"jobs_lost"`
}

// Duration is written in JSON as a Go duration string, rounded to the
// second.
type Duration time.Duration

func (d Duration) MarshalText() ([]byte, error) {
	return []byte(time.Duration(d).Round(time.Second).String()), nil
}

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Duration(v)
	return err
}

// Measure derives a policy's metrics from its trace:
//   - cost and cluster_hours: every cluster from its request to its end;
//   - idle_fraction: the share of the paid cluster-hours in which a
//     cluster ran no job (booting, idle and terminating time included);
//   - latency: a pipeline instance's arrival to its last job's end, over
//     the instances that ended;
//   - wait: a job's submission to its first start;
//   - makespan: the start of the run to the last job's end;
//   - jobs_lost: jobs that did not succeed.
func (t *Trace) Measure() Result {
	var r Result
	for _, c := range t.Clusters {
		r.Cost += c.Cost
		r.ClusterHours += (c.Ended - c.Requested).Hours()
	}
	var waits []time.Duration
	var last time.Duration
	busy := map[string][][2]time.Duration{}
	for _, j := range t.Jobs {
		if !j.Succeeded {
			r.JobsLost++
		}
		for i, a := range j.Attempts {
			busy[a.Cluster] = append(busy[a.Cluster], [2]time.Duration{a.Start, a.End})
			last = max(last, a.End)
			if i == 0 {
				waits = append(waits, a.Start-j.Submitted)
			}
		}
	}
	if r.ClusterHours > 0 {
		var used time.Duration
		for _, spans := range busy {
			used += union(spans)
		}
		r.IdleFraction = math.Max(0, 1-used.Hours()/r.ClusterHours)
	}
	var lat []time.Duration
	var sum time.Duration
	for _, in := range t.Instances {
		if in.End >= 0 {
			lat = append(lat, in.End-in.Arrival)
			sum += in.End - in.Arrival
		}
	}
	if len(lat) > 0 {
		r.LatencyMean = Duration(sum / time.Duration(len(lat)))
	}
	r.LatencyP95 = Duration(quantile(lat, 0.95))
	r.WaitP50 = Duration(quantile(waits, 0.5))
	r.WaitP95 = Duration(quantile(waits, 0.95))
	r.Makespan = Duration(last)
	r.Interventions = t.Interventions
	return r
}

// union is how long the spans cover together.
func union(spans [][2]time.Duration) time.Duration {
	slices.SortFunc(spans, func(a, b [2]time.Duration) int { return cmp.Compare(a[0], b[0]) })
	var total, end time.Duration
	for i, s := range spans {
		if i == 0 || s[0] > end {
			total += s[1] - s[0]
			end = s[1]
		} else if s[1] > end {
			total += s[1] - end
			end = s[1]
		}
	}
	return total
}

// quantile is the q-quantile of ds by the nearest rank; 0 for none.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}
