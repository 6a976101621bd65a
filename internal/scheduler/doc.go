// Package scheduler decides, from a snapshot of Berth's state, what to do
// next: which queued job goes on which cluster, which clusters to start,
// drain, terminate or give up on, and which jobs can never run.
//
// # Why it is pure
//
// Schedule takes a Snapshot and returns a Plan. It does no I/O, reads no
// clock (the time is Snapshot.Now), starts no goroutine, and its result
// does not depend on the order of the snapshot's slices or on map
// iteration. That is what lets the loop write a plan to the store before
// acting on it, lets the simulator drive the real scheduling code in
// virtual time, and lets the rules below be tested as tables of snapshots
// and plans, and as properties over random snapshots.
//
// # Vocabulary
//
//   - pass: the work for one pool. Pools are independent: a job only ever
//     runs on a cluster of its own pool, so each known pool gets a pass, in
//     name order. Clusters and jobs naming an unknown pool are ignored.
//   - eligible: a queued job whose not_before is not after Now. A job
//     deferred by a retry backoff is invisible to placement, failure and
//     demand; it only sets WakeAt and pins its required cluster.
//   - placement order: highest priority first, then oldest CreatedAt, then
//     ID.
//   - room: a free slot, Running < Slots, counting the placements made
//     earlier in the same plan.
//   - busiest: among ready clusters with room, the one running the most
//     jobs, then the oldest, then the lowest ID. Packing work onto the
//     busiest cluster lets the others go idle and be scaled down.
//   - affinity cluster: Snapshot.Affinity[job.Affinity], the cluster that
//     last ran the key. A key with no entry is established by its first
//     placement in the pass, so later jobs of that key in the same plan
//     follow it; the snapshot's entries are otherwise authoritative.
//   - waiting: an affinity_required job whose cluster is ready but full, or
//     still starting. It is neither placed nor failed, and it is not
//     demand, because a new cluster cannot help it.
//   - demand: eligible jobs left unplaced that are not waiting.
//   - supply: the slots of starting clusters, which will take work once
//     ready.
//   - up: starting plus ready clusters, what min_clusters counts.
//   - live: what max_clusters counts, as it will be once the plan is
//     carried out: starting, ready, and draining clusters still running
//     jobs. A draining cluster with no job is terminated by the same plan.
//   - pinned: a cluster named by a deferred affinity_required job. It is
//     not scaled down for idleness, since the job would fail the moment its
//     backoff ends.
//
// # The pipeline
//
// Each pass runs the same small steps over a working view of its pool, each
// step seeing what the earlier ones decided:
//
//	admit ─▶ lose ─▶ recycle ─▶ fail ─▶ place ─▶ scale up ─▶ scale down ─▶ terminate ─▶ wake
//
// In order:
//
//  1. admit sorts the pool's jobs once into placement order, drops
//     duplicate IDs, and sets the deferred jobs aside.
//  2. lose gives up on starting clusters past boot_timeout (Lose). They
//     are not supply, and a job requiring one fails.
//  3. recycle drains ready clusters past max_lifetime (Drain
//     "max_lifetime") before placement, so they take no new job.
//  4. fail ends affinity_required jobs whose cluster will never take them:
//     gone from the snapshot, of another pool, draining, terminating, or
//     lost or recycled in step 2 or 3 (Fail with affinity_lost). Deciding
//     this before placement keeps those jobs from being placed elsewhere.
//  5. place gives each remaining eligible job, in order, its affinity
//     cluster if that is ready with room, else the busiest ready cluster
//     with room. An affinity_required job whose cluster cannot take it now
//     waits. Ready clusters with room sit in a heap ordered by busyness, so
//     a placement costs O(log clusters) and the whole step is
//     O(jobs · log clusters).
//  6. scale up starts ceil((demand − supply) / slots) clusters when demand
//     exceeds supply, and enough to bring up to min_clusters, whichever is
//     more, never taking live past max_clusters (and, with nothing to start
//     for the queue, clusters for expected work: see Anticipation). A pool with max_clusters
//     0 starts nothing. Each Start carries the pool's fallback flag.
//  7. scale down drains ready clusters with no job, idle (IdleSince set)
//     for at least idle_timeout, longest idle first, while the pool has no
//     demand and up stays at or above min_clusters. An idle_timeout of 0
//     never scales down; auto is judged from the expected work.
//  8. terminate lists every draining cluster with no job, including those
//     drained in steps 3 and 7: scale-down always passes through draining,
//     so a cluster is never terminated under a job placed on it.
//  9. wake collects the deadlines still ahead: deferred jobs' not_before,
//     idle ready clusters' IdleSince+idle_timeout, starting clusters'
//     CreatedAt+boot_timeout, ready clusters' CreatedAt+max_lifetime, the
//     clusters taken as the snapshot has them. The earliest over all pools
//     is Plan.WakeAt; until then, Schedule gives the same plan for the same
//     state. A deadline may wake the loop for nothing (an idle cluster kept
//     by min_clusters); none is ever missed.
//
// # Anticipation
//
// Work that has not arrived yet is given to the scheduler as
// PoolView.Expected: arrivals the lifecycle foresees from running jobs'
// then hints, from what followed their tasks before, and from pipelines
// that arrive on a rhythm (see package lifecycle, foresight.go). The
// pool's lead is its learned boot time (BootTime, else DefaultBootTime)
// plus a minute. Within it:
//
//   - scale up, once the queue's own demand starts nothing, starts clusters
//     for the expected jobs beyond what the pool will have free by then
//     (free slots, slots of starting clusters, and running jobs expected
//     to end first, PoolView.Ends), within max_clusters and never for a
//     blocked pool or one holding starts back; work further ahead wakes
//     the loop a lead before it comes;
//   - scale down keeps the idle clusters that expected work will need, the
//     most recently idle first, but not beyond a lead past their timeout:
//     a wrong guess costs at most that much idle time;
//   - idle_timeout: auto (Pool.IdleAuto) drains an idle cluster at once
//     when the pool's latest work foretold what follows it
//     (PoolView.Foreseen) and nothing is expected within the lead, and
//     after a boot time otherwise: keeping a cluster idle as long as a new
//     one takes to boot costs at most twice the best choice made knowing
//     the future.
//
// Once every pool has had its pass, explain (wait.go) says why each
// eligible job left unplaced waits (Plan.Waits): for a starting cluster,
// or one the plan starts, whose slots go to the unplaced jobs in placement
// order; for its required affinity cluster; or because the pool starts no
// more (blocked, at max_clusters, holding starts back). The loop shows it
// on the job, with a start estimated by package forecast.
//
// # Invariants
//
// Every plan, for every snapshot (the property tests check these on random
// ones):
//
//   - no job is placed twice, and no job is placed before its not_before;
//   - no cluster gets more placements than its free slots;
//   - jobs go only to ready clusters of their own pool, never to one the
//     same plan drains or loses;
//   - a job is left unplaced while a later job of its pool (in placement
//     order) is placed only when it waits for its required cluster;
//   - no ready cluster of a pool keeps a free slot while a job of that pool
//     that could use it stays queued;
//   - live clusters plus starts never exceed max_clusters, unless the
//     snapshot was already over it (then nothing starts);
//   - only draining clusters with no job are terminated;
//   - the plan is the same for the same snapshot, whatever the order of its
//     slices.
package scheduler
