package berth

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestValidate covers the fields a jar step and an EMR runtime role bring:
// properties and execution_role_arn. want is the public message's start,
// "" for a valid spec.
func TestValidate(t *testing.T) {
	jar := func(props map[string]string) []Step {
		return []Step{{Jar: "s3://bucket/app.jar", MainClass: "com.example.Main", Properties: props}}
	}
	argv := []Step{{Args: []string{"true"}}}
	tests := []struct {
		name  string
		steps []Step
		role  string
		want  string
	}{
		{"no role", argv, "", ""},
		{"a role", argv, "arn:aws:iam::123456789012:role/emr-runtime", ""},
		{"a role with a path", argv, "arn:aws:iam::123456789012:role/service-role/berth/EMR_Runtime+x=y,z.a@b_c-d", ""},
		{"a role in aws-us-gov", argv, "arn:aws-us-gov:iam::123456789012:role/r", ""},
		{"a role in aws-cn", argv, "arn:aws-cn:iam::123456789012:role/r", ""},
		{"not an ARN", argv, "emr-runtime", `execution_role_arn: "emr-runtime" is not an ARN`},
		{"too few parts", argv, "arn:aws:iam::role/r", `execution_role_arn: "arn:aws:iam::role/r" is not an ARN`},
		{"not arn:", argv, "urn:aws:iam::123456789012:role/r", `execution_role_arn: "urn:aws:iam::123456789012:role/r" is not an ARN`},
		{"no partition", argv, "arn::iam::123456789012:role/r", `execution_role_arn: "arn::iam::123456789012:role/r": unknown partition ""`},
		{"a made-up partition", argv, "arn:gcp:iam::123456789012:role/r", `execution_role_arn: "arn:gcp:iam::123456789012:role/r": unknown partition "gcp"`},
		{"another service", argv, "arn:aws:s3::123456789012:role/r", `execution_role_arn: "arn:aws:s3::123456789012:role/r" is not an IAM ARN`},
		{"a region", argv, "arn:aws:iam:us-east-1:123456789012:role/r", `execution_role_arn: "arn:aws:iam:us-east-1:123456789012:role/r": an IAM ARN has no region`},
		{"a short account", argv, "arn:aws:iam::12345678901:role/r", `execution_role_arn: "arn:aws:iam::12345678901:role/r": account "12345678901" is not 12 digits`},
		{"a long account", argv, "arn:aws:iam::1234567890123:role/r", `execution_role_arn: "arn:aws:iam::1234567890123:role/r": account "1234567890123" is not 12 digits`},
		{"a lettered account", argv, "arn:aws:iam::12345678901x:role/r", `execution_role_arn: "arn:aws:iam::12345678901x:role/r": account "12345678901x" is not 12 digits`},
		{"a user", argv, "arn:aws:iam::123456789012:user/alice", `execution_role_arn: "arn:aws:iam::123456789012:user/alice" does not name a role`},
		{"role without a name", argv, "arn:aws:iam::123456789012:role", `execution_role_arn: "arn:aws:iam::123456789012:role" does not name a role`},
		{"an empty name", argv, "arn:aws:iam::123456789012:role/", `execution_role_arn: "arn:aws:iam::123456789012:role/": bad role path or name ""`},
		{"a path without a name", argv, "arn:aws:iam::123456789012:role/path/", `execution_role_arn: "arn:aws:iam::123456789012:role/path/": bad role path or name "path/"`},
		{"a space", argv, "arn:aws:iam::123456789012:role/my role", `execution_role_arn: "arn:aws:iam::123456789012:role/my role": bad role path or name`},
		{"a leading space", argv, " arn:aws:iam::123456789012:role/r", `execution_role_arn: " arn:aws:iam::123456789012:role/r" is not an ARN`},
		{"a name too long", argv, "arn:aws:iam::123456789012:role/" + strings.Repeat("r", 65), `execution_role_arn: "arn:aws:iam::123456789012:role/rrr`},
		{"an ARN too long", argv, "arn:aws:iam::123456789012:role/" + strings.Repeat("p/", 1100) + "r", "execution_role_arn: longer than 2048 bytes"},

		{"a jar with properties", jar(map[string]string{"mapreduce.job.maps": "4", "empty": ""}), "", ""},
		{"properties without a jar", []Step{{Args: []string{"true"}, Properties: map[string]string{"k": "v"}}}, "",
			"steps[0].properties: needs a jar"},
		{"an empty property name", jar(map[string]string{"": "v"}), "", `steps[0].properties: bad property name ""`},
		{"a property name with =", jar(map[string]string{"a=b": "v"}), "", `steps[0].properties: bad property name "a=b"`},
		{"empty properties without a jar", []Step{{Args: []string{"true"}, Properties: map[string]string{}}}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := JobSpec{Pool: "spark", Steps: tt.steps, ExecutionRoleArn: tt.role}
			err := spec.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.HasPrefix(Public(err), tt.want) {
				t.Errorf("Validate() = %v (public %q), want ErrInvalid starting %q", err, Public(err), tt.want)
			}
		})
	}
}

// TestValidateThen: each hint names a pool and 1..MaxHintJobs jobs, and a
// job gives at most MaxHints. Whether the pool exists is the service's to
// say.
func TestValidateThen(t *testing.T) {
	many := make([]Hint, MaxHints+1)
	for i := range many {
		many[i] = Hint{Pool: "p", Jobs: 1}
	}
	tests := []struct {
		name string
		then []Hint
		want string
	}{
		{"none", nil, ""},
		{"empty", []Hint{}, ""},
		{"one", []Hint{{Pool: "b", Jobs: 1}}, ""},
		{"the most", append([]Hint{{Pool: "b", Jobs: MaxHintJobs}}, many[:MaxHints-1]...), ""},
		{"too many", many, "then: more than 16 hints"},
		{"no pool", []Hint{{Pool: "b", Jobs: 1}, {Jobs: 1}}, "then[1].pool: is required"},
		{"no jobs", []Hint{{Pool: "b"}}, "then[0].jobs: must be 1..10000"},
		{"negative jobs", []Hint{{Pool: "b", Jobs: -1}}, "then[0].jobs: must be 1..10000"},
		{"too many jobs", []Hint{{Pool: "b", Jobs: MaxHintJobs + 1}}, "then[0].jobs: must be 1..10000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := JobSpec{Pool: "a", Steps: []Step{{Args: []string{"true"}}}, Then: tt.then}
			err := spec.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || Public(err) != tt.want {
				t.Errorf("Validate() = %v (public %q), want ErrInvalid %q", err, Public(err), tt.want)
			}
		})
	}
}

func TestMismatch(t *testing.T) {
	now := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	three := 3
	five := DefaultInfraRetry
	base := func() JobSpec {
		return JobSpec{
			Pool: "small", Name: "phase-3",
			Steps: []Step{
				{Name: "t", Args: []string{"spark-submit", "a.py"}, Env: map[string]string{"MODE": "full"}, Dir: "/srv"},
				{Name: "j", Jar: "s3://b/load.jar", MainClass: "Load", Properties: map[string]string{"mapreduce.job.maps": "4"}},
			},
			Priority: 2, Affinity: "nightly", Retries: 1, Timeout: Duration(time.Hour),
			IdempotencyKey: "k", Labels: map[string]string{"dag_id": "nightly"},
			ExecutionRoleArn: "arn:aws:iam::123456789012:role/berth/nightly",
			Then:             []Hint{{Pool: "spark", Jobs: 4}, {Pool: "small", Jobs: 1}},
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
		{"a jar step's properties", func(s *JobSpec) { s.Steps[1].Properties["mapreduce.job.maps"] = "8" }, "steps"},
		{"a jar step without properties", func(s *JobSpec) { s.Steps[1].Properties = nil }, "steps"},
		{"execution_role_arn", func(s *JobSpec) { s.ExecutionRoleArn = "arn:aws:iam::123456789012:role/other" }, "execution_role_arn"},
		{"no execution_role_arn", func(s *JobSpec) { s.ExecutionRoleArn = "" }, "execution_role_arn"},
		{"then's jobs", func(s *JobSpec) { s.Then[0].Jobs = 5 }, "then"},
		{"then's pool", func(s *JobSpec) { s.Then[1].Pool = "spark" }, "then"},
		{"then in another order", func(s *JobSpec) { s.Then[0], s.Then[1] = s.Then[1], s.Then[0] }, "then"},
		{"a hint more", func(s *JobSpec) { s.Then = append(s.Then, Hint{Pool: "big", Jobs: 1}) }, "then"},
		{"no then", func(s *JobSpec) { s.Then = nil }, "then"},
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
	spec := JobSpec{Pool: "small", Steps: []Step{{Args: []string{"x"}, Env: map[string]string{}}, {Jar: "s3://b/x.jar", Properties: map[string]string{}}},
		Labels: map[string]string{}, Then: []Hint{}}
	stored := spec.NewJob("job-2", now)
	stored.Labels, stored.Steps[0].Env, stored.Steps[1].Properties, stored.Then = nil, nil, nil, nil
	if got := spec.Mismatch(&stored); got != "" {
		t.Errorf("empty labels, env, properties and then against absent ones: Mismatch = %q, want \"\"", got)
	}
}
