// Package e2e checks `berth serve` end to end: Berth runs as a real child
// process, built from this module, on one of two pools.
//
//   - A local pool (local_test.go): a cluster is killed under a running
//     job and Berth is kill -9ed twice mid-workload; every job succeeds,
//     and each step, which writes its name to a marker file when it
//     starts, started once in its attempt.
//   - An EMR pool (emr_test.go): spot losses, kill -9 at several moments,
//     lost answers and throttling, against the in-repo EMR emulator, which
//     runs in the test process behind a loopback HTTP server; Berth talks
//     to it through the AWS SDK as it would to EMR.
//
// It runs real processes because what it checks is what only a process
// boundary shows: that state is on disk before it is acted on, so that a
// kill -9 at any moment (right after a submission, while clusters start,
// while steps are added or run) loses no job and starts nothing twice;
// that a restarted Berth adopts the clusters and steps the dead one left
// on EMR, found by the names it gave them; and that a lost answer or a
// burst of throttling from EMR is survived the same way. After each EMR
// run the emulator is the witness: no cluster name and no step name was
// started twice, every job has exactly one successful attempt, and no
// cluster outlives the pool's idle timeout.
//
// berths (berth_test.go) is the harness both use: a test's directory,
// configuration and berth processes, their logs shown when the test
// fails, and a race the detector finds in Berth failing it; world
// (world_test.go) adds the emulator.
//
// The package has only tests; this file holds its comment.
package e2e
