package wait

import "testing"

func TestForReturnsOnceTheConditionHolds(t *testing.T) {
	n := 0
	For(t, Tick*1000, "three polls", func() bool { n++; return n == 3 })
	if n != 3 {
		t.Fatalf("polled %d times, want 3", n)
	}
}

// fatalRecorder notes Fatalf instead of ending the test.
type fatalRecorder struct {
	testing.TB
	failed bool
}

func (r *fatalRecorder) Helper()               {}
func (r *fatalRecorder) Fatalf(string, ...any) { r.failed = true }

func TestForFailsAtTheDeadline(t *testing.T) {
	r := &fatalRecorder{TB: t}
	calls := 0
	For(r, 0, "never", func() bool { calls++; return calls > 1 })
	if !r.failed {
		t.Fatal("For did not fail when the deadline passed")
	}
}
