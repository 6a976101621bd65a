package berth

import (
	"testing"
	"time"
)

func TestMismatch(t *testing.T) {
	now := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	three := 3
	five := DefaultInfraRetry
	base := func() JobSpec {
		return JobSpec{
			Pool: "small", Name: "phase-3",
			Steps:    []Step{{Name: "t", Args: []string{"spark-submit", "a.py"}, Env: map[string]string{"MODE": "full"}, Dir: "/srv"}},
			Priority: 2, Affinity: "nightly", Retries: 1, Timeout: Duration(time.Hour),
			IdempotencyKey: "k", Labels: map[string]string{"dag_id": "nightly"},
		}
	}
	tests := []struct {
		name   string
		change func(s *JobSpec)
		want   string
	}{
		{"the same spec", func(s *JobSpec) {}, ""},
		{"max_infra_retries given as its default", func(s *JobSpec) { s.MaxInfraRetries = &five }, ""},
		{"resume given as its default", func(s *JobSpec) { s.Resume = ResumeFromStart }, ""},
		{"pool", func(s *JobSpec) { s.Pool = "spark" }, "pool"},
		{"name", func(s *JobSpec) { s.Name = "phase-4" }, "name"},
		{"a step's args", func(s *JobSpec) { s.Steps[0].Args = []string{"spark-submit", "b.py"} }, "steps"},
		{"a step's name", func(s *JobSpec) { s.Steps[0].Name = "u" }, "steps"},
		{"a step's env", func(s *JobSpec) { s.Steps[0].Env = map[string]string{"MODE": "fast"} }, "steps"},
		{"a step's dir", func(s *JobSpec) { s.Steps[0].Dir = "/tmp" }, "steps"},
		{"a step's jar", func(s *JobSpec) { s.Steps[0].Jar = "s3://b/x.jar" }, "steps"},
		{"a step more", func(s *JobSpec) { s.Steps = append(s.Steps, Step{Args: []string{"true"}}) }, "steps"},
		{"priority", func(s *JobSpec) { s.Priority = 3 }, "priority"},
		{"affinity", func(s *JobSpec) { s.Affinity = "hourly" }, "affinity"},
		{"affinity_required", func(s *JobSpec) { s.AffinityRequired = true }, "affinity_required"},
		{"retries", func(s *JobSpec) { s.Retries = 2 }, "retries"},
		{"max_infra_retries", func(s *JobSpec) { s.MaxInfraRetries = &three }, "max_infra_retries"},
		{"timeout", func(s *JobSpec) { s.Timeout = Duration(2 * time.Hour) }, "timeout"},
		{"resume", func(s *JobSpec) { s.Resume = ResumeUnfinished }, "resume"},
		{"a label's value", func(s *JobSpec) { s.Labels["dag_id"] = "hourly" }, "labels"},
		{"no labels", func(s *JobSpec) { s.Labels = nil }, "labels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first := base()
			job := first.NewJob("job-1", now)
			// What the job did since does not count.
			job.State, job.Steps[0].State = JobRunning, StepRunning
			job.Attempts = []Attempt{{N: 1, ClusterID: "cl-1", State: AttemptRunning}}
			again := base()
			tt.change(&again)
			if got := again.Mismatch(&job); got != tt.want {
				t.Errorf("Mismatch = %q, want %q", got, tt.want)
			}
		})
	}

	// A job as the store gives it back: empty maps and lists come back
	// absent.
	spec := JobSpec{Pool: "small", Steps: []Step{{Args: []string{"x"}, Env: map[string]string{}}}, Labels: map[string]string{}}
	stored := spec.NewJob("job-2", now)
	stored.Labels, stored.Steps[0].Env = nil, nil
	if got := spec.Mismatch(&stored); got != "" {
		t.Errorf("empty labels and env against absent ones: Mismatch = %q, want \"\"", got)
	}
}
