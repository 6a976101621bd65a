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
//  2. applies what the providers reported (one watcher per cluster polls
//     DescribeCluster and ListSteps and sends a report only when something
//     changed), what finished provider calls returned, and API commands;
//  3. ends attempts that were cancelled or timed out;
//  4. asks the pure scheduler for a plan over a snapshot of its state;
//  5. commits every change of the pass to the store in ONE transaction;
//  6. only then acts: creates clusters, submits and cancels steps,
//     terminates clusters, each call a task on the executor whose result
//     comes back to the loop as an input of a later pass.
//
// The loop wakes on events (a submission, a report, a finished call, an API
// command) and on the earliest time the scheduler said something would come
// due, with a slow ticker as a safety net; an idle system dispatches at once
// and costs nothing. Nothing in the loop, the watchers or the calls blocks
// waiting for another task, so the simulated executor can run them all in
// one goroutine.
//
// # Durable before acted on
//
// Step 5 comes before step 6, so nothing is ever started that the store does
// not know about. If a commit fails, the pass's changes are thrown away,
// state is reloaded from the store, nothing is acted on, and the loop holds
// back, from a tenth of a second doubling to half a minute, so a store that
// cannot write (a full disk) is not retried in a tight loop; meanwhile the
// service is not ready. If even the reload fails, the loop does nothing but
// retry it.
//
// Provider calls are derived from state, not remembered: a starting cluster
// without a provider id asks for CreateCluster, a terminating one for
// TerminateCluster, a running attempt's unsubmitted step for SubmitStep. So
// after any failure or restart the same state asks for the same calls, and
// the providers make them idempotent. A cluster Berth gives up on (boot
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
// # Attribution
//
// A step failure is the job's (it uses up retries); everything else is the
// infrastructure's (max_infra_retries). Steps are listed before the cluster
// is described, and providers mark a cluster dead before killing its steps,
// so a step that failed because its cluster died comes in the same report
// as the death and is charged to the loss. A running step named for an
// attempt that no longer runs (its submission timed out, or a cancel came
// first) is cancelled when a watcher sees it.
//
// # Loss
//
// A cluster reported lost (or terminated under running work) ends its
// running attempts with reason cluster_lost. Their jobs go back to the queue
// with their original creation time, so they run ahead of newer work of the
// same priority, and the loss is charged to the job's infrastructure budget
// (max_infra_retries), never to its retries. Losses the provider blames on
// capacity count towards the pool's switch to its fallback spec.
package service
