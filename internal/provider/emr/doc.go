// Package emr is the AWS EMR provider. It is being built (see the issue
// for the EMR provider); what is here now: the RunJobFlow call made from a
// pool's spec and the AddJobFlowSteps entry made from a job's step (spec.go),
// and the part every EMR pool of an account and region shares, the
// client-side rate limiter that keeps Berth within EMR's API limits
// (limit.go).
//
// EMR throttles each API with a token bucket per account and region
// (burst 10; refill 0.5 calls/s for ListSteps, DescribeStep,
// AddJobFlowSteps, RunJobFlow and TerminateJobFlows, 1/s for
// DescribeCluster) and the account as a whole (5/s). Berth keeps the same
// buckets on its side, so that it is throttled rarely rather than often,
// and its watchers poll less often as the fleet grows (PollInterval), so
// that one poll per cluster, DescribeCluster and ListSteps, fits the
// budget whatever the number of clusters.
package emr
