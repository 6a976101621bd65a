package berth

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Limits on a submission, so that no single request can swamp the store.
const (
	MaxSteps          = 256
	MaxArgs           = 1024
	MaxArgBytes       = 64 << 10
	MaxNameBytes      = 256
	MaxLabels         = 64
	MaxRetries        = 100
	MaxPriority       = 1_000_000
	DefaultInfraRetry = 5
	MaxTimeout        = 30 * 24 * time.Hour
	// MaxRoleARNBytes is the longest execution role ARN EMR takes.
	MaxRoleARNBytes = 2048
	// MaxBatch is the most jobs one batch submission takes.
	MaxBatch = 1000
)

// Submitted is one job of a batch submission's answer, in the batch's
// order.
type Submitted struct {
	// Created is false when the job's idempotency key was taken: Job is
	// then the job that holds it.
	Created bool `json:"created"`
	Job     Job  `json:"job"`
}

// JobSpec is what a workflow task submits.
type JobSpec struct {
	Pool             string            `json:"pool"`
	Name             string            `json:"name,omitempty"`
	Steps            []Step            `json:"steps"`
	Priority         int               `json:"priority,omitempty"`
	Affinity         string            `json:"affinity,omitempty"`
	AffinityRequired bool              `json:"affinity_required,omitempty"`
	Retries          int               `json:"retries,omitempty"`
	MaxInfraRetries  *int              `json:"max_infra_retries,omitempty"`
	Timeout          Duration          `json:"timeout,omitzero"`
	Resume           Resume            `json:"resume,omitempty"`
	IdempotencyKey   string            `json:"idempotency_key,omitempty"`
	Labels           map[string]string `json:"labels,omitempty"`
	// ExecutionRoleArn: see Job.ExecutionRoleArn.
	ExecutionRoleArn string `json:"execution_role_arn,omitempty"`
	// Then: see Job.Then.
	Then []Hint `json:"then,omitempty"`
}

// Hint is work that will follow a job once it succeeds: Jobs jobs on
// Pool. The workflow engine knows its DAG; Berth uses the hint to have a
// cluster of that pool ready when they come.
type Hint struct {
	Pool string `json:"pool"`
	Jobs int    `json:"jobs"`
}

// MaxHints bounds a job's then list, and MaxHintJobs a hint's jobs.
const (
	MaxHints    = 16
	MaxHintJobs = 10_000
)

// Validate checks a spec on its own (the pool's existence is the caller's to
// check) and names the field at fault. The error is an *Error of kind
// ErrInvalid whose public message starts with the field.
func (s *JobSpec) Validate() error {
	bad := func(field, format string, args ...any) error {
		return Errorf(ErrInvalid, "%s: %s", field, fmt.Sprintf(format, args...))
	}
	if s.Pool == "" {
		return bad("pool", "is required")
	}
	if len(s.Name) > MaxNameBytes {
		return bad("name", "longer than %d bytes", MaxNameBytes)
	}
	if len(s.Steps) == 0 {
		return bad("steps", "at least one step is required")
	}
	if len(s.Steps) > MaxSteps {
		return bad("steps", "more than %d steps", MaxSteps)
	}
	for i, st := range s.Steps {
		f := fmt.Sprintf("steps[%d]", i)
		if len(st.Name) > MaxNameBytes {
			return bad(f+".name", "longer than %d bytes", MaxNameBytes)
		}
		if len(st.Args) == 0 && st.Jar == "" {
			return bad(f+".args", "a step needs args (or a jar)")
		}
		if len(st.Args) > MaxArgs {
			return bad(f+".args", "more than %d args", MaxArgs)
		}
		if st.MainClass != "" && st.Jar == "" {
			return bad(f+".main_class", "needs a jar")
		}
		n := 0
		for _, a := range st.Args {
			n += len(a)
			if strings.ContainsRune(a, 0) {
				return bad(f+".args", "contains a NUL byte")
			}
		}
		if n > MaxArgBytes {
			return bad(f+".args", "longer than %d bytes in all", MaxArgBytes)
		}
		for k := range st.Env {
			if k == "" || strings.ContainsAny(k, "=\x00") {
				return bad(f+".env", "bad variable name %q", k)
			}
		}
		if len(st.Properties) > 0 && st.Jar == "" {
			return bad(f+".properties", "needs a jar: properties are Java properties of a jar step")
		}
		for k := range st.Properties {
			// A key with '=' could not be told from its value in the
			// -Dkey=value the JVM is given.
			if k == "" || strings.ContainsAny(k, "=\x00") {
				return bad(f+".properties", "bad property name %q", k)
			}
		}
	}
	if s.Priority < -MaxPriority || s.Priority > MaxPriority {
		return bad("priority", "must be within ±%d", MaxPriority)
	}
	if len(s.Affinity) > MaxNameBytes {
		return bad("affinity", "longer than %d bytes", MaxNameBytes)
	}
	if s.AffinityRequired && s.Affinity == "" {
		return bad("affinity_required", "needs an affinity")
	}
	if s.Retries < 0 || s.Retries > MaxRetries {
		return bad("retries", "must be 0..%d", MaxRetries)
	}
	if s.MaxInfraRetries != nil && (*s.MaxInfraRetries < 0 || *s.MaxInfraRetries > MaxRetries) {
		return bad("max_infra_retries", "must be 0..%d", MaxRetries)
	}
	if s.Timeout < 0 || s.Timeout.Std() > MaxTimeout {
		return bad("timeout", "must be between 0 and %s", MaxTimeout)
	}
	switch s.Resume {
	case "", ResumeFromStart, ResumeUnfinished:
	default:
		return bad("resume", "must be %q or %q", ResumeFromStart, ResumeUnfinished)
	}
	if len(s.IdempotencyKey) > 512 {
		return bad("idempotency_key", "longer than 512 bytes")
	}
	if len(s.Labels) > MaxLabels {
		return bad("labels", "more than %d labels", MaxLabels)
	}
	for k, v := range s.Labels {
		if k == "" || len(k) > MaxNameBytes || strings.ContainsRune(k, '=') {
			return bad("labels", "bad key %q", k)
		}
		if len(v) > MaxNameBytes {
			return bad("labels", "value of %q longer than %d bytes", k, MaxNameBytes)
		}
	}
	if len(s.Then) > MaxHints {
		return bad("then", "more than %d hints", MaxHints)
	}
	for i, h := range s.Then {
		if h.Pool == "" {
			return bad(fmt.Sprintf("then[%d].pool", i), "is required")
		}
		if h.Jobs < 1 || h.Jobs > MaxHintJobs {
			return bad(fmt.Sprintf("then[%d].jobs", i), "must be 1..%d", MaxHintJobs)
		}
	}
	if s.ExecutionRoleArn != "" {
		if why := checkRoleARN(s.ExecutionRoleArn); why != "" {
			return bad("execution_role_arn", "%s", why)
		}
	}
	return nil
}

var (
	// partitionRe matches AWS partitions: aws, aws-cn, aws-us-gov,
	// aws-iso-b...
	partitionRe = regexp.MustCompile(`^aws(-[a-z]+)*$`)
	// roleName matches an IAM role's name, and each element of its path:
	// the characters IAM allows in a name.
	roleName = regexp.MustCompile(`^[\w+=,.@-]+$`)
)

// checkRoleARN says what is wrong with an IAM role ARN
// (arn:<partition>:iam::<account>:role/<path/><name>), "" when nothing is.
// It checks the form only: whether the role exists, and may be assumed, is
// for AWS to say when the step is submitted.
func checkRoleARN(arn string) string {
	const want = "want arn:<partition>:iam::<12-digit account>:role/<name>"
	if len(arn) > MaxRoleARNBytes {
		return fmt.Sprintf("longer than %d bytes", MaxRoleARNBytes)
	}
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" {
		return fmt.Sprintf("%q is not an ARN; %s", arn, want)
	}
	partition, service, region, account, resource := parts[1], parts[2], parts[3], parts[4], parts[5]
	switch {
	case !partitionRe.MatchString(partition):
		return fmt.Sprintf("%q: unknown partition %q (aws, aws-cn, aws-us-gov...)", arn, partition)
	case service != "iam":
		return fmt.Sprintf("%q is not an IAM ARN (service %q); %s", arn, service, want)
	case region != "":
		return fmt.Sprintf("%q: an IAM ARN has no region (%q); %s", arn, region, want)
	case len(account) != 12 || strings.Trim(account, "0123456789") != "":
		return fmt.Sprintf("%q: account %q is not 12 digits", arn, account)
	}
	kind, path, ok := strings.Cut(resource, "/")
	if !ok || kind != "role" {
		return fmt.Sprintf("%q does not name a role; %s", arn, want)
	}
	elems := strings.Split(path, "/")
	for _, e := range elems {
		if !roleName.MatchString(e) {
			return fmt.Sprintf("%q: bad role path or name %q (letters, digits and +=,.@_- between slashes)", arn, path)
		}
	}
	if name := elems[len(elems)-1]; len(name) > 64 {
		return fmt.Sprintf("%q: role name longer than 64 characters", arn)
	}
	return ""
}

// CheckPools checks that the pools a spec names, its own and each hint's,
// are among configured, which must be sorted: the error lists them, so a
// caller sees what it may name. The error is an *Error of kind
// ErrUnprocessable whose public message starts with the field.
func (s *JobSpec) CheckPools(configured []string) error {
	unknown := func(field, pool string) error {
		return Errorf(ErrUnprocessable, "%s: unknown pool %q (configured: %s)", field, pool, strings.Join(configured, ", "))
	}
	if _, ok := slices.BinarySearch(configured, s.Pool); !ok {
		return unknown("pool", s.Pool)
	}
	for i, h := range s.Then {
		if _, ok := slices.BinarySearch(configured, h.Pool); !ok {
			return unknown(fmt.Sprintf("then[%d].pool", i), h.Pool)
		}
	}
	return nil
}

// NewJob makes the queued job a valid spec describes.
func (s *JobSpec) NewJob(id string, now time.Time) Job {
	j := Job{
		ID:               id,
		Pool:             s.Pool,
		Name:             s.Name,
		Priority:         s.Priority,
		Affinity:         s.Affinity,
		AffinityRequired: s.AffinityRequired,
		Retries:          s.Retries,
		MaxInfraRetries:  DefaultInfraRetry,
		Timeout:          s.Timeout,
		Resume:           s.Resume,
		IdempotencyKey:   s.IdempotencyKey,
		Labels:           s.Labels,
		ExecutionRoleArn: s.ExecutionRoleArn,
		Then:             s.Then,
		State:            JobQueued,
		CreatedAt:        now,
		Attempts:         []Attempt{},
	}
	if s.MaxInfraRetries != nil {
		j.MaxInfraRetries = *s.MaxInfraRetries
	}
	if j.Resume == "" {
		j.Resume = ResumeFromStart
	}
	for _, st := range s.Steps {
		j.Steps = append(j.Steps, JobStep{Step: st, State: StepPending})
	}
	return j
}

// Mismatch compares a submission with the job an earlier submission of the
// same idempotency key made, and names the first field of the submission
// that would have shaped a different job; "" when it would make the same
// one. Defaults count as given (an omitted resume is "from_start", an
// omitted max_infra_retries is DefaultInfraRetry), and an empty list or map
// equals an absent one, since the store keeps no difference between them.
// What the job has done since (its state, attempts, step states) does not
// count.
func (s *JobSpec) Mismatch(j *Job) string {
	want := s.NewJob(j.ID, j.CreatedAt)
	switch {
	case want.Pool != j.Pool:
		return "pool"
	case want.Name != j.Name:
		return "name"
	case !slices.EqualFunc(want.Steps, j.Steps, func(a, b JobStep) bool { return sameStep(a.Step, b.Step) }):
		return "steps"
	case want.Priority != j.Priority:
		return "priority"
	case want.Affinity != j.Affinity:
		return "affinity"
	case want.AffinityRequired != j.AffinityRequired:
		return "affinity_required"
	case want.Retries != j.Retries:
		return "retries"
	case want.MaxInfraRetries != j.MaxInfraRetries:
		return "max_infra_retries"
	case want.Timeout != j.Timeout:
		return "timeout"
	case want.Resume != j.Resume:
		return "resume"
	case !maps.Equal(want.Labels, j.Labels):
		return "labels"
	case want.ExecutionRoleArn != j.ExecutionRoleArn:
		// Another role is another job: its steps could do what the first
		// role may not.
		return "execution_role_arn"
	case !slices.Equal(want.Then, j.Then):
		// What follows is part of what was asked for: a resubmission that
		// says other work follows would warm other clusters. Order counts,
		// as the job shows its list as given.
		return "then"
	}
	return ""
}

func sameStep(a, b Step) bool {
	return a.Name == b.Name && slices.Equal(a.Args, b.Args) && a.Jar == b.Jar &&
		a.MainClass == b.MainClass && maps.Equal(a.Properties, b.Properties) &&
		maps.Equal(a.Env, b.Env) && a.Dir == b.Dir
}

// IdempotencyConflict is the error for a submission whose idempotency key
// names a job it does not describe (see Mismatch): answering with that job
// would hide the caller's mistake, so it is a conflict that names the job
// and the field.
func IdempotencyConflict(key, jobID, field string) error {
	return Errorf(ErrConflict, "idempotency_key %q was used for job %s with a different spec (%s differs)", key, jobID, field)
}
