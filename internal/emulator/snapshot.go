package emulator

import (
	"slices"
	"time"
)

// Cluster is a cluster as the emulator holds it, for tests' assertions.
type Cluster struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	State string `json:"state"`
	// Code and Message are the StateChangeReason.
	Code                 string            `json:"code,omitempty"`
	Message              string            `json:"message,omitempty"`
	Tags                 map[string]string `json:"tags,omitempty"`
	StepConcurrencyLevel int               `json:"step_concurrency_level"`
	// IdleTimeout is the auto-termination policy's, as sent (not scaled);
	// 0 without a policy.
	IdleTimeout            time.Duration `json:"idle_timeout,omitempty"`
	InstanceCollectionType string        `json:"instance_collection_type"`
	CreatedAt              time.Time     `json:"created_at"`
	ReadyAt                time.Time     `json:"ready_at,omitzero"`
	EndedAt                time.Time     `json:"ended_at,omitzero"`
	// Steps are in the order they were added.
	Steps []Step `json:"steps,omitempty"`
}

// Step is a step as the emulator holds it.
type Step struct {
	ID              string    `json:"id"`
	Name            string    `json:"name"`
	State           string    `json:"state"`
	Jar             string    `json:"jar"`
	MainClass       string    `json:"main_class,omitempty"`
	Args            []string  `json:"args,omitempty"`
	ActionOnFailure string    `json:"action_on_failure"`
	CreatedAt       time.Time `json:"created_at"`
	StartedAt       time.Time `json:"started_at,omitzero"`
	EndedAt         time.Time `json:"ended_at,omitzero"`
	// PID is the process of a command-runner.jar step once it started;
	// ExitCode its exit status once it exited (-1 before, or when a
	// signal ended it).
	PID      int `json:"pid,omitempty"`
	ExitCode int `json:"exit_code"`
	// FailureReason and FailureMessage are the FailureDetails of a
	// FAILED step.
	FailureReason  string `json:"failure_reason,omitempty"`
	FailureMessage string `json:"failure_message,omitempty"`
	Stdout         string `json:"stdout,omitempty"`
	Stderr         string `json:"stderr,omitempty"`
}

// Snapshot returns every cluster, in the order they were created.
func (e *Emulator) Snapshot() []Cluster {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Cluster, 0, len(e.order))
	for _, c := range e.order {
		out = append(out, c.snapshot())
	}
	return out
}

// Cluster returns the cluster of id, and whether there is one.
func (e *Emulator) Cluster(id string) (Cluster, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.clusters[id]
	if c == nil {
		return Cluster{}, false
	}
	return c.snapshot(), true
}

func (c *cluster) snapshot() Cluster {
	out := Cluster{
		ID: c.id, Name: c.name, State: c.state, Code: c.code, Message: c.message,
		StepConcurrencyLevel:   c.level,
		IdleTimeout:            time.Duration(c.idleTimeout) * time.Second,
		InstanceCollectionType: c.collection,
		CreatedAt:              c.created, ReadyAt: c.ready, EndedAt: c.ended,
	}
	if len(c.tags) > 0 {
		out.Tags = map[string]string{}
		for _, t := range c.tags {
			out.Tags[t.Key] = t.Value
		}
	}
	for _, s := range c.steps {
		out.Steps = append(out.Steps, Step{
			ID: s.id, Name: s.name, State: s.state, Jar: s.jar, MainClass: s.mainClass, Args: slices.Clone(s.args),
			ActionOnFailure: s.action,
			CreatedAt:       s.created, StartedAt: s.started, EndedAt: s.ended,
			PID: s.pid, ExitCode: s.exitCode,
			FailureReason: s.failReason, FailureMessage: s.failMessage,
			Stdout: string(s.stdout.Bytes()), Stderr: string(s.stderr.Bytes()),
		})
	}
	return out
}
