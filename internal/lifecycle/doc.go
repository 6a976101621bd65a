// Package lifecycle is Berth's lifecycle policy as pure code: what
// happens to jobs and clusters when providers report, calls return, users
// ask, and time passes.
//
// The loop (internal/service) owns a State and, each pass, hands it what
// came in: the jobs the API stored (Submitted, CancelRequested), what the
// watchers saw (ApplyReport), what provider calls returned (ApplyResult),
// and the API's commands (Drain, Terminate, Unblock). Decide then ends the
// attempts that were cancelled or timed out, asks the pure scheduler for a
// plan over a snapshot of the state and carries it out, keeps idle clocks
// true, and derives the provider calls the state asks for. What the pass
// decided is its Effects: the jobs, clusters and pools to write, the
// events, the calls to make, the watchers to start or poke, the metrics and
// log lines. The loop commits the writes in one transaction and only then
// acts on the rest; if the commit fails, it Restores the state from the
// store and acts on nothing.
//
// Nothing here reads a clock, starts a goroutine or does I/O: time is an
// argument, ids come from Config.NewID, and wherever many jobs or clusters
// are visited, they are visited in id order. The same state and inputs
// give the same Effects, which is what lets the simulator (internal/
// simcheck) replay a run from its seed, and what the table and property
// tests here rely on.
//
// # The rules
//
// Calls are derived from state, not remembered: a starting cluster without
// a provider id asks for CreateCluster, a terminating one for
// TerminateCluster, a running attempt's unsubmitted step on an observed
// cluster for SubmitStep. So after any failure or restart the same state
// asks for the same calls, and the providers make them idempotent.
//
// Attribution: a step failure is the job's, charged to its retries after
// an exponential backoff; a loss (or a provider that will not take a step)
// is the infrastructure's, charged to max_infra_retries and queued again
// ahead of newer work. Only a success counts from a cluster that is gone.
// The attempt's end reason decides what is charged, whatever it was being
// stopped for: a timeout the loss came before is no user failure, and a
// cancel stands with the loss counted.
//
// Failure classes: a creation refused as permanent (or a cluster lost as
// permanent, such as a bootstrap that always fails) blocks the pool, which
// starts nothing until it is unblocked or its configuration changes; a
// cluster started before the last unblock does not block it again. A
// capacity failure counts towards the pool's fallback spec. Any failed
// creation, and a cluster lost before it was ever ready, holds the pool's
// next start back, from half a minute doubling to ten minutes.
//
// A pass costs what changed, not what is queued (index.go), and a queue
// costs memory for its head, not its length: a long queue keeps its
// dormant jobs, those that are nothing yet but their place in it, as that
// place only, and the loop reads them whole before a pass as they near
// the head (dormant.go: Wanted, Fill).
//
// Every job and cluster move goes through moveJob and moveCluster, checked
// against the one table of moves in the domain package; an illegal move is
// refused, logged and counted, never applied.
//
// # What waits, and until when
//
// The State also learns (package learn) how long each task's jobs run and
// each pool's clusters take to boot, from what its committed passes ended
// and brought up, and from the store's latest successes when it is loaded
// (Seed). After a pass, Forecast gives the queued jobs their outlook (see
// forecast.go): the scheduler's reason for each, and for the head of each
// queue a start estimated by package forecast from the live state.
//
// # What comes next
//
// From the jobs' pipeline labels (dag_id, task_id, run_id, as the Airflow
// provider sets them) the State learns what follows each task — the next
// task's pool, how soon after the end its first job came, how many jobs it
// had — and when each pipeline's runs arrive (foresight.go). Each pass
// tells the scheduler the work it expects: a running job's then hints, or
// what followed its task before, when the job is expected to end; work a
// job announced as it ended, awaited a few minutes; the next run of a
// pipeline on a rhythm; and known work followed down its pipeline a few
// tasks. The scheduler starts clusters a boot ahead of it. A run whose job
// failed or was cancelled is no longer awaited, and a pool whose cluster a
// person drained or terminated starts none for expected work for ten
// minutes.
package lifecycle
