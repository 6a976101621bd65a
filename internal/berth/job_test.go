package berth

import "testing"

func TestStepNameRoundTrip(t *testing.T) {
	name := StepName("job-01a2b3", 3, 7)
	id, a, s, ok := ParseStepName(name)
	if !ok || id != "job-01a2b3" || a != 3 || s != 7 {
		t.Fatalf("ParseStepName(%q) = %q %d %d %v", name, id, a, s, ok)
	}
	for _, bad := range []string{"", "berth", "berth:job:1", "other:job-1:1:0", "berth:JOB:1:0", "berth:job-1:0:0", "berth:job-1:1:-1", "berth:job-1:x:0", "berth:job-1:1:0:9"} {
		if _, _, _, ok := ParseStepName(bad); ok {
			t.Errorf("ParseStepName(%q) accepted", bad)
		}
	}
}

func TestMoves(t *testing.T) {
	if !JobRunning.CanMove(JobQueued) || JobSucceeded.CanMove(JobQueued) || JobQueued.CanMove(JobSucceeded) {
		t.Error("job moves wrong")
	}
	if !ClusterStarting.CanMove(ClusterDraining) || ClusterTerminated.CanMove(ClusterReady) || ClusterDraining.CanMove(ClusterReady) {
		t.Error("cluster moves wrong")
	}
}
