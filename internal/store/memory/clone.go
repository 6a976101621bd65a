package memory

import (
	"cmp"
	"maps"
	"slices"
	"time"

	"github.com/berthhq/berth/internal/berth"
)

// Copies in and out. Every value crosses the store's edge as a deep copy,
// in the shape the sqlite driver reads back from its columns and JSON:
// times in UTC without a monotonic reading, the zero time as the zero
// time; empty label, env and property maps nil; an empty then list nil;
// other nil slices nil and empty ones empty; attempts in number order, one
// per number (the last given wins, as an upsert by number does), with
// JobID cleared. The copies are idempotent, so the one function serves
// both ways.

// cloneJob returns a copy of j that shares no memory with it.
func cloneJob(j *berth.Job) berth.Job {
	out := *j
	out.Steps = cloneSteps(j.Steps)
	out.Labels = cloneMap(j.Labels)
	out.Then = cloneHints(j.Then)
	out.CreatedAt, out.StartedAt, out.EndedAt, out.NotBefore = utc(j.CreatedAt), utc(j.StartedAt), utc(j.EndedAt), utc(j.NotBefore)
	out.Attempts = cloneAttempts(j.Attempts)
	return out
}

// cloneJobOver is cloneJob for a job that replaces old, a version the
// store keeps: what is unchanged (the labels, the then list, the steps'
// commands) is taken from old instead of copied again. Nothing the store
// keeps is ever changed in place, so its versions may share it; what it
// hands out is copied by cloneJob. The loop rewrites every job it touches and
// seldom changes these, so Commit mostly allocates only the attempts.
func cloneJobOver(j, old *berth.Job) berth.Job {
	out := *j
	out.Steps = cloneStepsOver(j.Steps, old.Steps)
	if maps.Equal(j.Labels, old.Labels) {
		out.Labels = old.Labels
	} else {
		out.Labels = cloneMap(j.Labels)
	}
	if slices.Equal(j.Then, old.Then) {
		out.Then = old.Then
	} else {
		out.Then = cloneHints(j.Then)
	}
	out.CreatedAt, out.StartedAt, out.EndedAt, out.NotBefore = utc(j.CreatedAt), utc(j.StartedAt), utc(j.EndedAt), utc(j.NotBefore)
	out.Attempts = cloneAttempts(j.Attempts)
	return out
}

// cloneStepsOver copies steps, taking their commands from old when none
// has changed: then only the states are new, or nothing is.
func cloneStepsOver(steps, old []berth.JobStep) []berth.JobStep {
	if steps == nil || old == nil || len(steps) != len(old) {
		return cloneSteps(steps)
	}
	same := true
	for i := range steps {
		if !sameCommand(&steps[i].Step, &old[i].Step) {
			return cloneSteps(steps)
		}
		same = same && steps[i].State == old[i].State
	}
	if same {
		return old
	}
	out := slices.Clone(old)
	for i := range steps {
		out[i].State = steps[i].State
	}
	return out
}

// sameCommand reports whether a and b are the same command, nil slices and
// empty ones told apart as the sqlite driver's JSON tells them apart.
func sameCommand(a, b *berth.Step) bool {
	return a.Name == b.Name && a.Jar == b.Jar && a.MainClass == b.MainClass && a.Dir == b.Dir &&
		(a.Args == nil) == (b.Args == nil) && slices.Equal(a.Args, b.Args) && maps.Equal(a.Env, b.Env) &&
		maps.Equal(a.Properties, b.Properties)
}

// cloneSteps copies steps with the arguments of all of them in one
// allocation; each step's Args is capped, so appending to one never writes
// into the next.
func cloneSteps(steps []berth.JobStep) []berth.JobStep {
	if steps == nil {
		return nil
	}
	out := make([]berth.JobStep, len(steps))
	n := 0
	for i := range steps {
		n += len(steps[i].Args)
	}
	args := make([]string, n)
	for i := range steps {
		out[i] = steps[i]
		if a := steps[i].Args; a != nil {
			k := copy(args, a)
			out[i].Args = args[:k:k]
			args = args[k:]
		}
		out[i].Env = cloneMap(steps[i].Env)
		out[i].Properties = cloneMap(steps[i].Properties)
	}
	return out
}

// cloneAttempts copies attempts, their steps in one allocation and their
// exit codes in another. The result is never nil: a job always has an
// attempt list, maybe empty.
func cloneAttempts(as []berth.Attempt) []berth.Attempt {
	out := make([]berth.Attempt, len(as))
	nSteps, nCodes := 0, 0
	for i := range as {
		nSteps += len(as[i].Steps)
		for k := range as[i].Steps {
			if as[i].Steps[k].ExitCode != nil {
				nCodes++
			}
		}
	}
	steps := make([]berth.AttemptStep, nSteps)
	var codes []int
	if nCodes > 0 {
		codes = make([]int, nCodes)
	}
	sorted := true
	for i := range as {
		a := as[i]
		a.JobID = ""
		a.StartedAt, a.EndedAt = utc(a.StartedAt), utc(a.EndedAt)
		if a.Steps != nil {
			k := copy(steps, a.Steps)
			a.Steps = steps[:k:k]
			steps = steps[k:]
			for x := range a.Steps {
				st := &a.Steps[x]
				st.StartedAt, st.EndedAt = utc(st.StartedAt), utc(st.EndedAt)
				if st.ExitCode != nil {
					codes[0] = *st.ExitCode
					st.ExitCode = &codes[0]
					codes = codes[1:]
				}
			}
		}
		out[i] = a
		if i > 0 && out[i-1].N >= a.N {
			sorted = false
		}
	}
	if !sorted {
		out = byNumber(out)
	}
	return out
}

// byNumber sorts attempts by number and keeps the last of each number, as
// writing them one by one as upserts would.
func byNumber(as []berth.Attempt) []berth.Attempt {
	slices.SortStableFunc(as, func(a, b berth.Attempt) int { return cmp.Compare(a.N, b.N) })
	w := 0
	for i := range as {
		if i+1 < len(as) && as[i+1].N == as[i].N {
			continue
		}
		as[w] = as[i]
		w++
	}
	clear(as[w:])
	return as[:w]
}

// cloneMap copies a label, env or property map; an empty one is nil, as the sqlite
// driver stores it.
func cloneMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return maps.Clone(m)
}

// cloneHints copies a then list; an empty one is nil, as the sqlite driver
// stores it.
func cloneHints(h []berth.Hint) []berth.Hint {
	if len(h) == 0 {
		return nil
	}
	return slices.Clone(h)
}

// normCluster is a cluster as stored: times in UTC, and without Running
// and Cost, which the service derives.
func normCluster(c berth.Cluster) berth.Cluster {
	c.CreatedAt, c.ReadyAt, c.IdleSince, c.EndedAt = utc(c.CreatedAt), utc(c.ReadyAt), utc(c.IdleSince), utc(c.EndedAt)
	c.Running, c.Cost = 0, 0
	return c
}

func normPool(p berth.PoolState) berth.PoolState {
	p.FirstFailureAt, p.FallbackUntil, p.BlockedAt, p.UnblockedAt = utc(p.FirstFailureAt), utc(p.FallbackUntil), utc(p.BlockedAt), utc(p.UnblockedAt)
	return p
}

// utc is t in UTC, the zero time staying the zero time.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}
