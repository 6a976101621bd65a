// Package local is the provider that runs clusters as groups of processes on
// this machine; it is Berth's embedded default.
//
// A local cluster behaves like an EMR cluster in the way that matters most
// to recovery: it outlives the `berth serve` process that created it. Its
// steps run detached from the server (their own session and process group,
// stdin from /dev/null, output to files), their exit status is written to
// disk by a small shell wrapper, and everything the provider knows is read
// back from disk. A restarted server — a new Provider value over the same
// directory — therefore sees the steps that are still running and the ones
// that ended while it was down, and adopts them instead of starting them
// again. A step itself can neither reach those records from where it runs
// nor write an exit status the provider believes (see "What a step can
// write").
//
// # On-disk layout
//
//	<Dir>/tmp/                         cluster directories being built, renamed into place
//	<Dir>/clusters/<clusterID>/        the provider's records; no step runs here
//	    cluster.json                   id, pool, slots, fallback, created_at,
//	                                   boot_time, state (running|terminated|lost),
//	                                   reason, capacity, ended_at
//	    lock                           flock: writers exclusive, ListSteps shared
//	    steps/<stepID>/                flock on the directory: held by its submission
//	        step.json                  the record: name, argv, env, dir, submitted_at;
//	                                   pid, pgid, start_ticks, started_at, gated,
//	                                   ok_hash, fail_hash (of the exit tokens);
//	                                   written once (step.json.tmp + rename)
//	        ran                        marker: the wrapper took the go line and
//	                                   runs the command (empty; created by the wrapper)
//	        stdout, stderr             the process's output
//	        exit                       "<code> <token>", written by the wrapper
//	        cancelled                  marker: when CancelStep was asked
//	        start_error                why the process could not be started
//	<Dir>/workdirs/<clusterID>/<stepID>/ the working directory of a step whose spec
//	                                   names none, created before it starts
//
// Several pools may share one Dir: a cluster's directory is named by Berth's
// cluster id, which is globally unique, and the provider's id for a cluster
// is that same id.
//
// # Why it is built this way
//
// A cluster directory is assembled under tmp/ and renamed into place, so
// one that is visible is complete. A step directory is named from the step
// name (a sanitized prefix for people, a hash for uniqueness), which is
// what makes SubmitStep idempotent across restarts, and is claimed rather
// than assembled: under the cluster's exclusive lock, held only for the
// claim, a submission makes the directory (or finds it) and takes the
// flock on it, which it holds until its wrapper has answered. Two
// submissions of one name, in one server or two, cannot both claim it: the
// second finds the step's flock held and waits for it, then adopts what the
// first made.
//
// A step's process starts behind a gate, because the server can crash
// between starting the wrapper and recording its pid, and a process that
// ran without a record could be neither watched nor stopped, nor told from
// a step that never ran. The wrapper's stdin is a pipe from the server; it
// waits for the go line, which the server writes only after step.json is
// durable: the file, and its entries in the step's directory and in
// steps/, synced once each. That one record holds both what a restarted
// server needs to stop the process (pid, pgid, start time) and what it
// needs to adopt the step by name (the spec), so it is written once, after
// the wrapper started — the wrapper's start and the record's sync overlap
// — and nothing before it needs to be durable: whatever a crash leaves
// without it never ran. A server that dies before the go line closes the
// pipe, and the wrapper exits on end of file having run and written
// nothing. Having read go, the wrapper creates the ran marker, acknowledges
// on a second pipe (its fd 3) and only then runs the command, with stdin
// from /dev/null. SubmitStep returns only after that acknowledgement, or
// after recording start_error if the wrapper ended without it.
//
// So a step without step.json, or with a gated record and no ran marker,
// is a submission that has not run: under way, if its flock is held, or
// else one that never ran and never will. ListSteps omits it either way,
// as if it had not been submitted; SubmitStep of the same name waits for
// one under way, and empties one that never ran (the record first) and
// submits afresh under the same id. A wrapper left alive by such a crash
// is still deciding — it meets end of file, or runs the step if the go line
// reached the pipe before the crash — and SubmitStep waits for it to decide
// (killing it if it is stuck) before it replaces anything. A step with the
// ran marker, no exit file and a dead wrapper ran and vanished: failed, as
// before.
//
// A submission does not hold the cluster's lock past its claim, so a
// termination can come while it runs. Termination records the cluster's
// end and then kills every step that has a record; a submission writes its
// record and then reads the cluster's, and opens no gate on a cluster that
// ended. Whichever order the two take, the step is killed or never runs.
//
// Directories written before step.json hold spec.json and, once the
// wrapper started, proc.json: read together they are the same record, so a
// server upgraded under running steps adopts them.
//
// A cluster has no process of its own. It is starting until created_at +
// boot_time and ready after, a state derived from durable facts and the
// clock, so it too survives a restart.
//
// A step is running while the wrapper shell that leads its process group is
// alive. Liveness is a signal 0 to the group plus /proc/<pid>/stat: a zombie
// counts as dead (after a restart the orphaned wrapper belongs to init, which
// may be slow to reap it), and the process start time recorded at launch
// guards against the pid having been reused. Signals go to the whole group,
// so a step's children stop with it, but never to a group whose leader
// number now belongs to a different process.
//
// The flocks, on a cluster's lock file and on a step's directory, work
// within one server and across servers sharing a directory, and the kernel
// releases them if the holder dies. The cluster's orders claims, cancels
// and terminations against each other and against ListSteps.
//
// The Provider is the parent of every wrapper it starts, so it sees each
// end at once and tells the service (provider.Notifier), whose watcher
// then polls the cluster without waiting for its interval. A wrapper
// adopted after a restart is not its child: polls find that one's end.
//
// A watcher lists a cluster's steps every poll, and a warm cluster's history
// only grows, so a Provider keeps in memory each step it has read in a state
// that can never change (finished.go says which) and reads from disk only
// the others. That memory is a copy of the files, never their substitute: a
// new Provider over the same Dir reads the same answers from disk.
//
// # What a step can write
//
// A step runs as the server's user, so nothing bars it from the
// provider's files by force. What the provider makes sure of is that a
// step's outcome is what its command returned, not what it wrote. Two
// things do that.
//
// The records are not where the step is. A step runs in the directory its
// spec names or, by default, in a directory of its own under work/, never
// in its record directory; and neither its working directory nor its
// environment (the server's, BERTH_STEP_NAME, PWD, the step's own
// variables) names the records. A step that writes a file called exit, or
// ran, or step.json, where it runs or in the directories above, writes
// beside its records, not over them.
//
// The exit status is signed. A step can still find its records — its
// stdout is a file there, and its wrapper's arguments name the directory —
// so the wrapper writes the exit file as "<code> <token>". The server makes
// two random tokens per step, ok for code 0 and fail for any other, and
// hands them to the wrapper on the go line; step.json keeps only their
// SHA-256. The tokens are in no file, argument or environment the step
// can read (the wrapper unsets them before it runs the command), so the
// step cannot write an exit file that the provider believes. One it does
// not believe counts as none: the step runs while its wrapper lives, the
// wrapper's own record replaces the file when the step ends, and a step
// whose wrapper ended without leaving its own record failed
// (MessageForgedExit). Once the wrapper has recorded a failure its token is
// in the file, where a process the step left behind can read it; it serves
// for no success, and the ok token reaches the file only when the step
// did succeed. That is why there are two tokens and not one.
//
// The other markers (ran, cancelled, start_error) are not signed: a step
// that finds them can make itself read as failed or cancelled, no better
// for it than failing, but never as succeeded. Nor is this a sandbox: a
// step that deliberately rewrites step.json with hashes of its own, or
// reads its wrapper's memory where the system lets a process trace its
// parent, or, where /bin/sh is bash, steers the wrapper through what bash
// takes from the environment (exported functions, SHELLOPTS), is attacking
// the server as its own user, as it could by editing the server's database.
//
// Directories written before exit tokens hold proc.json without the hashes
// and exit files with a bare code, which this version does not believe: a
// step started by an earlier version reads as running while its process
// lives and as failed (MessageForgedExit) once it ends, whatever its code.
// Let a local provider's steps finish before upgrading past it.
//
// The package needs a Unix system; the /proc checks are skipped where /proc
// is missing, leaving the signal-0 test alone.
package local
