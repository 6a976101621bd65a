// Package simcheck tests Berth the way FoundationDB and TigerBeetle test
// theirs: the real service, many simulated days, faults injected, the
// invariants checked after every event, and every failure replayable from
// its seed. `berth sim check` and this package's tests run it.
//
// # What is real, what is simulated
//
// The service under test is the one `berth serve` runs: its loop
// (internal/service), its policy (internal/lifecycle) and its scheduler
// (internal/scheduler), unchanged. Three seams make it run in virtual time:
//
//   - The executor (internal/executor). Everything the service does
//     concurrently — a pass of its loop, a provider call, a watcher's poll,
//     a timer — is a task it hands its executor. executor.Sim runs tasks as
//     discrete events on a virtual clock, one at a time in one goroutine;
//     events due at the same moment run in an order drawn from the seed,
//     and each provider call takes a latency drawn from it too. Time jumps
//     from one event to the next, so an hour of fleet time costs the
//     milliseconds its events take.
//   - The provider (internal/provider/sim): clusters and steps as a pure
//     function of the clock, with its own seeded draws for boot times,
//     capacity shortages and failed calls. It passes the same conformance
//     suite as the local provider.
//   - The store: the in-memory driver (internal/store/memory), which passes
//     the same conformance suite as SQLite; --sqlite runs the real driver.
//
// Nothing in the service reads the wall clock, starts a goroutine or draws
// on the system's randomness behind these seams: ids come from
// service.Options.NewID, and whatever the loop does with many jobs or
// clusters it does in id order, never in map order. So a seed is the whole
// run: the same seed gives the same event log, byte for byte
// (TestSeedReplays), and `berth sim check --from S --seeds 1 -v` prints
// the run that failed.
//
// # What a seed runs
//
// A generated workload: one to three pools with random slots, cluster
// bounds, idle and boot timeouts, lifetimes and fallbacks, and jobs of one
// to three steps with priorities, affinities, retries, timeouts, resume
// modes, idempotent resubmissions and cancels, arriving over the first 60%
// of the run. Over the same time, faults: clusters killed (spot reclaims),
// capacity shortages, specs that can never work (a validation error, a
// bootstrap that always fails) until someone mends them and unblocks the
// pool, provider calls that fail, are throttled or lose their reply, slow
// calls, store writes that fail (before or after they are written),
// operators draining and terminating clusters, and crashes of Berth itself:
// the service is dropped as a killed process would be and a new one starts
// over the same store and providers. The last 40% (at least 90
// minutes) is quiet, so that every job can end.
//
// # The invariants
//
// After every event, from the provider's side:
//   - never more live clusters in a pool than its max_clusters, counting
//     every cluster Berth has not asked to terminate;
//   - a pool the store has blocked starts no cluster until it is unblocked.
//
// After every write, from the store's side (a copy kept from the writes
// that reached it, so what is durable, not what the service believes):
//   - no cluster runs more jobs than its slots; no job has two running
//     attempts, or a running attempt that is not its last; a running job
//     has a running attempt and a queued one none;
//   - a job placed in a pass went onto a ready cluster (never a draining
//     one);
//   - never more live clusters than max_clusters in Berth's state either;
//   - no job the store has was never acknowledged (or sent with a key);
//   - no pass refused an illegal state change;
//   - a job that ended shows it: every step and attempt ended, and its
//     failure counters agree with its attempts' end reasons;
//   - a queued job written since the last pass, as the service shows it,
//     says why it waits; its eta is not before that pass, a cluster it
//     waits for is of its pool, and a backoff lasts until its not_before.
//
// At the end:
//   - every acknowledged job has ended (the bound is the quiet time);
//   - no step of an attempt was started twice, counted at the provider;
//   - no cluster runs at a provider that Berth has ended or never knew;
//   - the provider calls stay within a budget (a poll every interval, a
//     few per step and per cluster), so a call resent in a loop fails;
//   - the jobs' cost shares do not exceed their clusters' cost.
//
// An idempotency key always gives the same job; a submission is retried,
// as a client would, while the service answers unavailable.
package simcheck
