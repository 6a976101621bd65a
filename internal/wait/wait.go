// Package wait is how Berth's tests wait for a state: poll a condition
// with a short tick until it holds, and fail the test with what was awaited
// when a deadline passes first. Tests never sleep and hope.
package wait

import (
	"testing"
	"time"
)

// Tick is how often For polls.
const Tick = 5 * time.Millisecond

// For polls cond until it holds, failing t if within passes first.
func For(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(within)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		<-time.After(Tick)
	}
}
