// Package e2e checks `berth serve` end to end with an EMR pool: the
// in-repo EMR emulator runs in the test process behind a loopback HTTP
// server, and Berth runs as a real child process, built from this module,
// that talks to it through the AWS SDK as it would to EMR.
//
// It runs real processes because what it checks is what only a process
// boundary shows: that state is on disk before it is acted on, so that a
// kill -9 at any moment (right after a submission, while clusters start,
// while steps are added or run) loses no job and starts nothing twice;
// that a restarted Berth adopts the clusters and steps the dead one left
// on EMR, found by the names it gave them; and that a lost answer or a
// burst of throttling from EMR is survived the same way. After each run
// the emulator is the witness: no cluster name and no step name was
// started twice, every job has exactly one successful attempt, and no
// cluster outlives the pool's idle timeout.
//
// The package has only tests; this file holds its comment.
package e2e
