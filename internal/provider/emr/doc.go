// Package emr is the AWS EMR provider: one Provider per pool, over
// aws-sdk-go-v2's EMR and S3 clients.
//
//   - emr.go: clusters (RunJobFlow, found again by name after a crash),
//     steps (AddJobFlowSteps one at a time, found by name), the poll
//     (ListSteps by state and by id), cancellation, strays.
//   - spec.go: the RunJobFlow call made from a pool's spec and the
//     AddJobFlowSteps entry made from a job's step.
//   - errors.go: EMR's answers as Berth's failure classes.
//   - logs.go: step logs from the cluster's log URI in S3.
//   - client.go, limit.go: the clients, and the rate limiter every pool of
//     a region shares.
//
// EMR throttles each API with a token bucket per account and region
// (burst 10; refill 0.5 calls/s for ListSteps, DescribeStep,
// AddJobFlowSteps, RunJobFlow and TerminateJobFlows, 1/s for
// DescribeCluster) and the account as a whole (5/s). Berth keeps the same
// buckets on its side, every attempt of every call drawing on them, so
// that it is throttled rarely rather than often; and its watchers poll
// less often as the fleet grows (PollInterval), so that one poll per
// cluster fits the budget whatever the number of clusters.
//
// AddJobFlowSteps and RunJobFlow have no idempotency token. The SDK
// retries them only when EMR refused them for its rate; after an answer
// that may hide a success (a server error, a timeout) the provider looks
// for the step or cluster by the name Berth gave it before it adds
// another, and a search never reads further back than the attempt's start.
package emr
