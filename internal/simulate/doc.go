// Package simulate runs a workload (internal/workload) under several
// policies on the same random draws and measures each the same way:
//
//   - berth: the real service — its loop, policy and scheduler — on the
//     simulated executor with the sim provider, in virtual time;
//   - airflow-static: today's basic DAG, a cluster per pool per pipeline
//     instance, parallel jobs split statically over a fixed number of
//     clusters, a person recreating lost clusters;
//   - cluster-per-phase: the SubDag variant, a fresh cluster per phase,
//     the phase retried whole on a loss;
//   - oracle: clairvoyant, exactly the clusters the running jobs need,
//     each booted just in time, no losses: the yardstick.
//
// Every policy produces a Trace; the metrics (Trace.Measure) and the
// timeline are drawn from traces alone.
package simulate
