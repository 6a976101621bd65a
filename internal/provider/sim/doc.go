// Package sim is the provider of simulated clusters: a model of how EMR
// clusters boot, run steps, get reclaimed, fail and cost, for tests,
// benchmarks and what-if runs.
//
// # Time
//
// The provider has no goroutines, no timers and never sleeps. What it
// records are facts with times — a cluster created at t whose boot takes b,
// a step submitted at s that runs for d, a loss due at l — and every call
// derives the state from them and its clock's Now. A cluster is starting
// until t+b and ready after; a step is running until s+d and then
// succeeded or failed. So the same provider runs on the wall clock in
// `berth serve` and in virtual time under a simulator that moves a
// clock.Fake: nothing happens between calls, and nothing needs to.
//
// # The model
//
// Each pool has a Model for its primary spec and one for its fallback
// (CreateRequest.Fallback):
//
//   - BootTime and TerminateTime, each a Dist: fixed, uniform or
//     exponential. TerminateCluster stops the cluster's steps at once and
//     leaves it terminating for a TerminateTime, then terminated.
//   - LossPerClusterHour, the rate of spot reclaims. Each cluster draws its
//     time to loss at creation (exponential, from the creation on); at that
//     time it is lost with Class provider.ClassCapacity and the steps
//     running on it fail. A termination begun before it cancels it.
//   - CapacityShortage, the probability that CreateCluster is refused with
//     a provider.Error of ClassCapacity, Code "InsufficientCapacity".
//   - Broken, a spec that can never work, in either of the forms EMR shows:
//     CreateCluster refused with ClassPermanent "ValidationException", or a
//     cluster that boots and at the end of its boot is lost with
//     ClassPermanent "bootstrap action 1 failed", never having been ready.
//   - StepTime. A step whose args are ["sleep", "90s"] runs that long and
//     succeeds; ["fail", "90s"] runs that long and fails with exit code 1;
//     any other step (jar steps too) runs for a StepTime and succeeds.
//     CheckStep refuses a sleep or fail step without exactly one positive
//     duration. Options.Script, for tests, decides every step instead.
//
// KillCluster (the Killer capability) is a reclaim on demand: the cluster
// is lost at once with ClassCapacity.
//
// API faults (Faults, changed at run time with SetFaults) are per-call
// probabilities of a transient error, of berth.ErrThrottled (EMR's
// ThrottlingException) and of a lost reply — the call takes effect and
// then fails — applied to every call of the API: creation, description,
// termination, steps, FindCluster and StepLogs. Slow answers are not
// modelled here: the provider answers at once, and a simulated executor
// decides when a call's answer arrives.
//
// # Determinism
//
// Every random draw — a boot or terminate time, a time to loss, a
// shortage, a step time, a call's fault — comes from one math/rand/v2
// source seeded by Options.Seed, and is drawn during a call. The same seed
// and the same sequence of calls at the same times therefore give the same
// clusters, ids, outcomes and faults. A draw that cannot matter is not made
// (a fixed time, a rate or probability of zero). Ids count up per provider:
// "sim-c-1", "sim-s-1", with Options.IDPrefix in place of "sim".
//
// # Identity and counting
//
// CreateCluster is idempotent per Berth cluster id while that cluster is
// not gone, SubmitStep per step name on a cluster, as the seam requires.
// Snapshot reports every cluster ever created (with whether Berth asked to
// terminate it, when it ended and its cost) and how many times each step
// name was started, so that a harness can check from the provider's side
// that no step ran twice and no cluster was left behind. Billing is per
// second with a one-minute minimum, from creation to the end (terminated
// or lost), at Options.PricePerHour.
//
// The provider keeps what it knows in memory for its lifetime: a new
// Provider knows no cluster, and reports every id it is asked about lost.
// A simulator that restarts Berth hands the same Provider to the new
// service, as a real cloud outlives the server that uses it.
package sim
