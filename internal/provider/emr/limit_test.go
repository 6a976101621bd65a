package emr

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/clock"
	"github.com/berthhq/berth/internal/config"
	"github.com/berthhq/berth/internal/wait"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// A bucket gives its burst at once, then one call per refill.
func TestReserveFollowsTheBucket(t *testing.T) {
	clk := clock.NewFake(t0)
	l := NewLimiter(clk)
	for i := range 10 {
		if d := l.Reserve("ListSteps"); d != 0 {
			t.Fatalf("call %d of the burst waits %s", i+1, d)
		}
	}
	// The eleventh waits for a token at 0.5/s: 2 s; the twelfth 4 s.
	if d := l.Reserve("ListSteps"); d != 2*time.Second {
		t.Fatalf("first call past the burst waits %s, want 2s", d)
	}
	if d := l.Reserve("ListSteps"); d != 4*time.Second {
		t.Fatalf("second call past the burst waits %s, want 4s", d)
	}
	// Time pays the debt back: 10 s later there are 3 tokens again.
	clk.Advance(10 * time.Second)
	for i := range 3 {
		if d := l.Reserve("ListSteps"); d != 0 {
			t.Fatalf("call %d after 10 s waits %s", i+1, d)
		}
	}
	if d := l.Reserve("ListSteps"); d <= 0 {
		t.Fatal("the bucket gave more than it had")
	}
}

// Every call draws on the account's bucket too: many APIs at once are held
// to 5 calls a second.
func TestTheAccountBucketHoldsAllAPIs(t *testing.T) {
	clk := clock.NewFake(t0)
	l := NewLimiter(clk)
	apis := []string{"DescribeCluster", "ListSteps", "AddJobFlowSteps", "RunJobFlow", "TerminateJobFlows", "DescribeStep", "CancelSteps"}
	var last time.Duration
	for i := range 35 {
		last = l.Reserve(apis[i%len(apis)])
	}
	// 35 calls: a burst of 10, then 25 at 5/s: the last waits 5 s.
	if last != 5*time.Second {
		t.Fatalf("the 35th call across APIs waits %s, want 5s", last)
	}
}

func TestWait(t *testing.T) {
	clk := clock.NewFake(t0)
	l := NewLimiter(clk)
	for range 10 {
		if err := l.Wait(context.Background(), "RunJobFlow"); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Wait(ctx, "RunJobFlow"); err == nil {
		t.Fatal("Wait past the burst with a cancelled context returned nil")
	}
	done := make(chan error, 1)
	go func() { done <- l.Wait(context.Background(), "RunJobFlow") }()
	// The waiter is on the fake clock: it returns once time moves past its
	// reservation.
	wait.For(t, 10*time.Second, "the waiter on the clock", func() bool { return clk.Pending() > 0 })
	clk.Advance(10 * time.Second)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A scaled limiter's buckets refill that many times as fast.
func TestScaledLimiter(t *testing.T) {
	l := NewScaledLimiter(clock.NewFake(t0), 20)
	for range 10 {
		l.Reserve("ListSteps")
	}
	// 0.5 × 20 = 10 a second: the eleventh call waits 100 ms.
	if d := l.Reserve("ListSteps"); d != 100*time.Millisecond {
		t.Fatalf("first call past the burst waits %s, want 100ms", d)
	}
}

func TestPollIntervalGrowsWithTheFleet(t *testing.T) {
	tests := []struct {
		clusters int
		want     time.Duration
	}{
		{0, 30 * time.Second},
		{1, 30 * time.Second},
		{10, 30 * time.Second},
		// 20 clusters: 20 ListSteps per poll at 0.4/s usable: 50 s.
		{20, 50 * time.Second},
		{100, 250 * time.Second},
	}
	for _, tt := range tests {
		if got := PollInterval(tt.clusters, 30*time.Second); got != tt.want {
			t.Errorf("PollInterval(%d) = %s, want %s", tt.clusters, got, tt.want)
		}
	}
	// Polling n clusters at that interval stays within the buckets.
	for _, n := range []int{1, 20, 100, 1000} {
		iv := PollInterval(n, time.Second)
		if perSec := float64(n) / iv.Seconds(); perSec > DefaultRates["ListSteps"].Refill {
			t.Errorf("%d clusters every %s: %.2f ListSteps/s, over the bucket", n, iv, perSec)
		}
		if perSec := float64(2*n) / iv.Seconds(); perSec > AccountRate.Refill {
			t.Errorf("%d clusters every %s: %.2f calls/s, over the account", n, iv, perSec)
		}
	}
}

// The provider's poll interval follows the fleet the limiter tracks, every
// pool of the region counted.
func TestProviderPollIntervalFollowsTheTrackedFleet(t *testing.T) {
	lim := NewLimiter(clock.NewFake(t0))
	p, err := New(Options{Pool: "p", Primary: &config.EMRSpec{Region: "us-east-1"}, EMR: noAPI{}, Limiter: lim, PollBase: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.PollInterval(); got != 10*time.Second {
		t.Errorf("empty fleet: poll every %s, want the base 10s", got)
	}
	for i := range 100 {
		lim.Track(fmt.Sprintf("j-%d", i), true)
	}
	if got, want := p.PollInterval(), PollInterval(100, 10*time.Second); got != want || got <= 10*time.Second {
		t.Errorf("100 clusters: poll every %s, want %s (slower than the base)", got, want)
	}
	for i := range 100 {
		lim.Track(fmt.Sprintf("j-%d", i), false)
	}
	if got := p.PollInterval(); got != 10*time.Second {
		t.Errorf("fleet gone: poll every %s, want the base again", got)
	}
}

// A limiter scaled for raised limits paces a large fleet's polls as many
// times as fast, never faster than the base.
func TestScaledPollInterval(t *testing.T) {
	tests := []struct {
		scale    float64
		clusters int
		want     time.Duration
	}{
		{1, 100, 250 * time.Second},
		{10, 100, 25 * time.Second},
		{10, 20, 10 * time.Second}, // 5 s is under the base
		{20, 20, 10 * time.Second},
		{100, 1000, 25 * time.Second},
	}
	for _, tt := range tests {
		lim := NewScaledLimiter(clock.NewFake(t0), tt.scale)
		for i := range tt.clusters {
			lim.Track(fmt.Sprintf("j-%d", i), true)
		}
		if got := lim.PollInterval(10 * time.Second); got != tt.want {
			t.Errorf("scale %g, %d clusters: poll every %s, want %s", tt.scale, tt.clusters, got, tt.want)
		}
	}
	p, err := New(Options{Pool: "p", Primary: &config.EMRSpec{Region: "us-east-1"}, EMR: noAPI{}, Limiter: NewScaledLimiter(clock.NewFake(t0), 10), PollBase: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		p.o.Limiter.Track(fmt.Sprintf("j-%d", i), true)
	}
	if got := p.PollInterval(); got != 25*time.Second {
		t.Errorf("provider on a limiter scaled 10×, 100 clusters: poll every %s, want 25s", got)
	}
}

// noAPI is an EMR client no test calls.
type noAPI struct{ API }

// A wait that ends before its call gives its token back, and one that
// could not be served before its deadline fails at once: calls never
// made hold no one up.
func TestWaitGivesBackWhatItDidNotUse(t *testing.T) {
	clk := clock.NewFake(t0)
	l := NewLimiter(clk)
	for range 10 {
		if err := l.Wait(context.Background(), "ListSteps"); err != nil {
			t.Fatal(err)
		}
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for range 60 {
		l.Wait(cancelled, "ListSteps")
	}
	soon, cancelSoon := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancelSoon()
	if err := l.Wait(soon, "ListSteps"); !errors.Is(err, ErrLimited) || !errors.Is(err, berth.ErrThrottled) {
		t.Errorf("a wait past its deadline: %v, want ErrLimited (throttled)", err)
	}
	// No call that was never made holds a reservation: the next waits
	// one refill, not the 61 calls that were never made.
	if d := l.Reserve("ListSteps"); d > 2*time.Second {
		t.Errorf("the next ListSteps waits %s: calls never made kept their tokens", d)
	}
}
