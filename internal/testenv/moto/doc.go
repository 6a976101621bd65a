// Package moto runs moto_server, an AWS emulator, for the tests of code
// that calls AWS through aws-sdk-go-v2.
//
// Start gives a test a server of its own, stopped when the test ends;
// Reset clears it. Shared gives a handle on one server per test binary
// (the package's TestMain calls Main, which stops it), since moto takes a
// second or two to start: each handle sends its requests as a moto account
// of its own, so tests that share the server see only their own resources
// and may run in parallel, with no Reset. AWSConfig points the SDK's
// clients at a server with static credentials and no retries.
//
// moto_server is the one BERTH_MOTO_SERVER names (.ci/run installs one
// from requirements.txt into .venv at the repository root and names it),
// else .venv/bin/moto_server at the module root, else the one on PATH.
// With none, the tests that need it skip, or fail when
// BERTH_REQUIRE_MOTO=1, as under CI. Its output goes to a test's log when
// the test fails.
//
// # What moto 5.2.1 does with Berth's calls
//
// This package's tests pin each point, so that an upgrade of moto that
// changes one fails here first.
//
// EMR, as on AWS:
//   - DescribeCluster shows RunJobFlow's name, release, service role,
//     tags, applications, log URI, StepConcurrencyLevel and visibility;
//     ListInstanceGroups its instance groups (type, count, market, bid).
//   - ListClusters filters by ClusterStates; ListSteps lists newest first,
//     50 a page with Marker, and filters by StepStates.
//   - DescribeCluster of an unknown id: 400 *types.InvalidRequestException
//     whose ErrorCode_ is "NoSuchCluster". TerminateJobFlows of a
//     terminated cluster succeeds.
//
// EMR, unlike AWS:
//   - Nothing takes time: a cluster is WAITING as RunJobFlow returns
//     (never STARTING or BOOTSTRAPPING), and RUNNING once it has steps,
//     for good; one not kept alive with no steps is TERMINATED at once.
//   - No step ever ends: the first one added is RUNNING and every later
//     one PENDING, whatever StepConcurrencyLevel. So a step's outcome, its
//     logs in S3 and cancellation cannot be seen on moto.
//   - TerminateJobFlows ends a cluster at once, with no TERMINATING and no
//     StateChangeReason (AWS: USER_REQUEST), and leaves its steps RUNNING
//     and PENDING (AWS cancels them). AddJobFlowSteps to a terminated
//     cluster succeeds and makes it RUNNING again (AWS refuses it).
//   - ListSteps, AddJobFlowSteps and TerminateJobFlows of an unknown
//     cluster, and CancelSteps, GetAutoTerminationPolicy and
//     ListInstanceFleets always, answer an HTML 500. The SDK's error is
//     then no smithy.APIError but an *awshttp.ResponseError (status 500)
//     around a *smithy.DeserializationError: code that takes a 500 for a
//     transient failure retries these for ever. DescribeStep of an unknown
//     step returns no step and no error.
//   - RunJobFlow takes an AutoTerminationPolicy and drops it (AWS shows it
//     only through GetAutoTerminationPolicy, see above), and takes
//     instance fleets and keeps none: InstanceCollectionType is empty.
//   - Every region is us-east-1: moto's EMR reads the region from the host
//     name only, so ARNs say us-east-1 and a client of any region sees
//     every cluster of its account.
//
// S3, with UsePathStyle (moto answers on one host, not one per bucket):
//   - An object comes back byte for byte: a gzip object stored with
//     Content-Encoding gzip comes back compressed; neither moto nor the
//     SDK unpacks it.
//   - GetObject of a missing key: 404 *types.NoSuchKey; of a missing
//     bucket: 404 with code NoSuchBucket, a generic API error (the SDK
//     models none for GetObject); HeadObject of a missing key: 404
//     *types.NotFound.
//   - Bucket names are global, across the accounts of Shared handles too,
//     and moto checks no permissions: any account reads any bucket.
package moto
