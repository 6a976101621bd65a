package clock

import (
	"testing"
	"time"
)

func TestFakeTimers(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := NewFake(start)
	var ran []string
	f.AfterFunc(2*time.Second, func() { ran = append(ran, "b") })
	f.AfterFunc(time.Second, func() { ran = append(ran, "a") })
	stopped := f.AfterFunc(time.Second, func() { ran = append(ran, "stopped") })
	f.AfterFunc(time.Second, func() {
		ran = append(ran, "a2")
		// A timer made by a timer, already due, runs in the same Advance.
		f.AfterFunc(0, func() { ran = append(ran, "nested") })
	})
	if !stopped.Stop() || stopped.Stop() {
		t.Fatal("Stop: want true once, then false")
	}
	ch := f.After(3 * time.Second)

	f.Advance(time.Second)
	if got := join(ran); got != "a,a2,nested" {
		t.Fatalf("after 1s ran %s", got)
	}
	f.Advance(2 * time.Second)
	if got := join(ran); got != "a,a2,nested,b" {
		t.Fatalf("after 3s ran %s", got)
	}
	select {
	case at := <-ch:
		if !at.Equal(start.Add(3 * time.Second)) {
			t.Fatalf("After fired at %v", at)
		}
	default:
		t.Fatal("After did not fire")
	}
	if n := f.Pending(); n != 0 {
		t.Fatalf("%d timers pending", n)
	}
}

func TestRealTimerStop(t *testing.T) {
	tm := Real{}.AfterFunc(time.Hour, func() { t.Error("ran") })
	if !tm.Stop() {
		t.Fatal("Stop of a pending timer = false")
	}
}

func join(s []string) string {
	out := ""
	for i, v := range s {
		if i > 0 {
			out += ","
		}
		out += v
	}
	return out
}
