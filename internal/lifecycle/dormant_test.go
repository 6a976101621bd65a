package lifecycle

import (
	"fmt"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
)

// Wanted names the dormant jobs a pass may place or forecast, and once it
// must read any, readAhead of them at least: a queue that burns down a
// few jobs a pass reads them in one read every many passes.
func TestWantedReadsAhead(t *testing.T) {
	s := New(Config{KeepWhole: 2}, []*Pool{{Pool: berth.Pool{Name: "p", Slots: 1, MaxClusters: 1}}})
	s.Begin(t0)
	var jobs []berth.Job
	for i := range 3000 {
		j := berth.Job{ID: fmt.Sprintf("job-%04d", i), Pool: "p", State: berth.JobQueued, CreatedAt: t0.Add(time.Duration(i) * time.Millisecond)}
		jobs = append(jobs, j)
		s.Submitted(j)
	}
	near := headMargin + forecastJobs // no cluster, no free slot
	ids := s.Wanted()
	if len(ids) != near-2 || ids[0] != jobs[2].ID {
		t.Fatalf("first read: %d jobs from %s, want the %d dormant ones of the first %d", len(ids), ids[0], near-2, near)
	}
	s.Fill(jobs[2:near])
	if ids := s.Wanted(); len(ids) != 0 {
		t.Fatalf("%d jobs wanted with the head whole", len(ids))
	}
	// Ten jobs leave the head: ten dormant jobs come near, and the read
	// takes readAhead from there.
	for _, j := range jobs[:10] {
		s.unindex(s.jobs[j.ID])
		delete(s.jobs, j.ID)
	}
	ids = s.Wanted()
	if len(ids) != readAhead || ids[0] != jobs[near].ID || ids[readAhead-1] != jobs[near+readAhead-1].ID {
		t.Fatalf("read after ten left: %d jobs from %s, want %d from %s", len(ids), ids[0], readAhead, jobs[near].ID)
	}
}
