// Package emulator is an AWS EMR that runs in the process: it speaks EMR's
// wire protocol (awsJson1.1), so that aws-sdk-go-v2's emr client, pointed
// at it with BaseEndpoint, runs unchanged against it, and it does what
// Berth depends on and other fakes lack: clusters that boot, wait, run
// steps and end on a clock; steps that run real processes; EMR's
// validation, pagination, token-bucket throttling and the order in which
// a lost cluster reports its loss; and faults a test scripts. It runs in
// Go tests (httptest.NewServer(emulator.New(...))) and as `berth
// emulator` for people.
//
// # Protocol
//
// An EMR call is a POST with X-Amz-Target: ElasticMapReduce.<Operation>
// and a JSON body; the answer is JSON in application/x-amz-json-1.1, with
// timestamps in epoch seconds. An error is a 4xx or 5xx with
// X-Amzn-ErrorType and a body {"__type": code, "Message": message}, which
// the SDK turns into its modeled error (InvalidRequestException,
// InternalServerException) or a smithy.GenericAPIError with the code
// (ValidationException, ThrottlingException, ...). An unknown operation
// is a 400 UnknownOperationException.
//
// The operations: RunJobFlow, DescribeCluster, ListClusters (ClusterStates,
// CreatedAfter/CreatedBefore, 50 a page, newest first), TerminateJobFlows,
// AddJobFlowSteps, ListSteps (StepStates, StepIds, 50 a page, newest
// first), DescribeStep, CancelSteps, ListInstanceFleets,
// ListInstanceGroups, GetAutoTerminationPolicy and AddTags. A cluster id
// it does not know is a 400 InvalidRequestException "Cluster id
// 'j-...' is not valid.".
//
// EMR's checks that a caller could fail: StepConcurrencyLevel 1..256;
// with more than one step at once, ActionOnFailure CONTINUE only (an
// unset ActionOnFailure is TERMINATE_CLUSTER, EMR's API default); at most
// 256 PENDING, RUNNING and CANCEL_PENDING steps on a cluster; no steps
// for a cluster that is terminating or terminated; instance groups or
// fleets, not both, each with one MASTER; an auto-termination
// IdleTimeout of 60..604800 seconds. Each is a ValidationException.
//
// # Clusters
//
// A cluster is STARTING for BootTime, BOOTSTRAPPING for BootstrapTime,
// then WAITING, and RUNNING while steps run. TerminateJobFlows makes it
// TERMINATING for TerminateTime, then TERMINATED with USER_REQUEST; its
// pending steps are CANCELLED and its running ones INTERRUPTED, their
// processes killed. A cluster that does not keep its job flow alive ends
// (ALL_STEPS_COMPLETED) once it has no step left; one with an
// auto-termination policy ends the same way once idle (no pending or
// running step) for IdleTimeout × Options.IdleScale. A step with
// ActionOnFailure TERMINATE_CLUSTER that fails ends the cluster with
// STEP_FAILURE; CANCEL_AND_WAIT cancels the pending steps.
//
// # Steps
//
// Steps are PENDING until the cluster is ready, then at most
// StepConcurrencyLevel of them RUNNING at once, in the order they were
// added; the others wait. A step of command-runner.jar runs its Args as a
// process (argv; a shell only if the args say `sh -c`) in a temporary
// directory of its cluster, in a process group of its own that ends with
// it (on Linux), its stdout and stderr kept: exit status 0 is COMPLETED,
// another FAILED with FailureDetails (Message "Command exited with status
// N", LogFile the s3:// path of its stderr.gz). A step of any other jar
// runs nothing and completes after JarStepTime. CancelSteps makes a
// pending step CANCELLED at once; a running one is CANCEL_PENDING, still
// holding its place (EMR starts no pending step in it), until
// its process ends after SIGTERM to its group (SEND_INTERRUPT, the
// default) or SIGKILL (TERMINATE_PROCESS), then CANCELLED; a step that has
// ended answers Status FAILED with a Reason.
//
// When the cluster has a LogUri (s3://bucket/prefix), LogDelay after a
// step that ran ends, its stdout and stderr are in the emulator's S3,
// gzipped, at <prefix>/<cluster id>/steps/<step id>/stdout.gz and
// stderr.gz. The same server answers S3's path-style GET, HEAD, PUT and
// DELETE of /<bucket>/<key> (aws-sdk-go-v2's s3 client with UsePathStyle),
// with S3's NoSuchKey (404) for an absent key; every bucket exists.
// A request is EMR's when it is a POST with X-Amz-Target, a control
// request under /emulator/, and S3's otherwise.
//
// # Faults
//
// Methods of Emulator script them in Go; a person uses the control
// endpoints, POSTs of a small JSON body answered {"ok": true}, or 400
// (bad body), 404 (no such cluster), 409 (the cluster is already ending)
// with {"error": "..."}:
//
//	POST /emulator/spot-loss         {"cluster_id": "j-..."}
//	POST /emulator/instance-failure  {"cluster_id": "j-...", "survive": false}
//	POST /emulator/fail-bootstraps   {"n": 1}
//	POST /emulator/fail-capacity     {"n": 1}
//	POST /emulator/fail-calls        {"operation": "RunJobFlow", "code": "ThrottlingException", "message": "Rate exceeded", "status": 400, "n": 1}
//	POST /emulator/drop-replies      {"operation": "RunJobFlow", "n": 1}
//	POST /emulator/latency           {"operation": "ListSteps", "latency": "2s"}   ("*": every operation; "0s" removes it)
//	POST /emulator/throttle          {"enabled": true}
//	GET  /emulator/stats             {"calls": {op: n}, "throttled": n, "clusters": [...]}
//
// A spot loss (SpotLoss) fails the cluster's running steps at once, and
// LossLag later the cluster is TERMINATED_WITH_ERRORS with
// INSTANCE_FAILURE, "The master node was terminated: ...", its pending
// steps CANCELLED: the steps fail before the cluster says why, as on EMR.
// An instance failure (InstanceFailure) fails the running steps the same
// way and ends the cluster likewise, unless it survives. FailBootstraps
// makes the next clusters end BOOTSTRAP_FAILURE after bootstrapping
// ("On the master instance (i-...), bootstrap action 1 returned a
// non-zero return code"); FailCapacity makes them end after STARTING,
// INSTANCE_FLEET_TIMEOUT for fleets, and for groups INTERNAL_ERROR "EC2
// is out of capacity for <type> in availability zone <zone>. ..." as EMR
// reports it. FailCalls fails the next calls of an operation without
// effect; DropReplies lets them take effect and answers 500
// InternalFailure, so that a caller's retries can be checked for
// idempotency; SetLatency holds answers back.
//
// With throttling on (Options.Throttle, SetThrottle) every call draws a
// token from its API's bucket and from the account's, as EMR does: burst
// 10 each, refilled at 0.5 a second for ListSteps, DescribeStep,
// AddJobFlowSteps, RunJobFlow and TerminateJobFlows, 1 a second for
// DescribeCluster and every other API, and 5 a second for the account;
// Options.ThrottleScale multiplies every refill, for runs whose times are
// divided by the same factor. A call either bucket cannot pay is a 400
// ThrottlingException "Rate exceeded" and takes nothing. On a fake clock
// this is deterministic.
//
// Calls, Requests (every request body of an operation, as sent),
// Throttled and Snapshot tell a test what happened. Every state change is
// a timer on Options.Clock, so that on clock.Fake a test moves time
// itself; the end of a step's process is the one thing that comes from
// outside the clock. Close kills every step process and stops the timers.
package emulator
