// Package service is Berth's control loop and the operations the API
// exposes.
//
// # The loop
//
// The loop owns all job and cluster state; its passes run one at a time, on
// an executor (see package executor) that is goroutines on the wall clock in
// berth serve and discrete events in virtual time in a simulation. Each pass
// (runOnce):
//
//  1. picks up new submissions and cancel requests from the store;
//  2. hands the policy (package lifecycle) what the providers reported (one
//     watcher per cluster polls DescribeCluster and ListSteps and sends a
//     report only when something changed), what finished provider calls
//     returned, and API commands;
//  3. lets the policy decide: stop cancelled and timed-out attempts, plan
//     with the pure scheduler, carry the plan out, derive provider calls;
//  4. commits every change of the pass to the store in ONE transaction;
//  5. only then acts: makes the provider calls, each a task on the
//     executor whose result comes back to the loop as an input of a later
//     pass, starts and pokes watchers, and counts and logs what happened.
//
// After the commit, the loop publishes a view for readers: the pools' live
// counts, the live clusters, and the outlook of the queued jobs (why each
// waits, and for the head of each queue when it should start; package
// lifecycle has how). Reads (Job, Jobs, WaitJob) show it on every queued
// job: the job's own, else its pool's for a job too far back, else what
// the job says itself (a backoff) or that the loop has yet to pick it up.
// The outlook is filled again two passes later, so readers look at it
// only under the service's lock.
//
// The loop wakes on events (a submission, a report, a finished call, an API
// command) and on the earliest time the policy said something would come
// due, with a slow ticker as a safety net; an idle system dispatches at once
// and costs nothing. Nothing in the loop, the watchers or the calls blocks
// waiting for another task, so the simulated executor can run them all in
// one goroutine.
//
// # Durable before acted on
//
// Step 4 comes before step 5, so nothing is ever started that the store does
// not know about. If a commit fails, the pass's changes are thrown away,
// state is reloaded from the store, nothing is acted on, and the loop holds
// back, from a tenth of a second doubling to half a minute, so a store that
// cannot write (a full disk) is not retried in a tight loop; meanwhile the
// service is not ready. If even the reload fails, the loop does nothing but
// retry it.
//
// Provider calls are derived from state, not remembered (see package
// lifecycle), so after any failure or restart the same state asks for the
// same calls, and the providers make them idempotent. A cluster Berth gives
// up on (boot
// timeout, failed creation) is not simply marked lost: it stays terminating
// (with ends_lost) until the provider confirms it is gone, so a cluster that
// comes up late is not left running, unwatched and billed.
//
// # At most one submission per attempt
//
// The gap is between "ask the provider" and "record its answer": a crash
// there leaves a cluster or step running that the store has no provider id
// for. The cluster carries Berth's cluster id and the step carries the
// attempt's identity in its name (berth.StepName); CreateCluster and
// SubmitStep are idempotent on them, and a restarted service first waits for
// a cluster's first report and adopts any step it finds by name before it
// submits anything on that cluster.
//
// # Attribution and loss
//
// Steps are listed before the cluster is described, and providers mark a
// cluster dead before killing its steps, so a step that failed because its
// cluster died comes in the same report as the death and is charged to the
// loss (package lifecycle has the rules). A running step named for an
// attempt that no longer runs (its submission timed out, or a cancel came
// first) is cancelled when a watcher sees it.
package service
