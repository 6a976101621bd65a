package main

import (
	"math"
	"strings"
	"testing"
)

// The loop-pass histogram is not on the server yet, so its reading is
// checked here on a scrape written by hand.
func TestHistogramQuantile(t *testing.T) {
	const before = `
# TYPE berth_loop_pass_seconds histogram
berth_loop_pass_seconds_bucket{le="0.001"} 10
berth_loop_pass_seconds_bucket{le="0.01"} 10
berth_loop_pass_seconds_bucket{le="0.1"} 10
berth_loop_pass_seconds_bucket{le="+Inf"} 10
berth_loop_pass_seconds_sum 0.005
berth_loop_pass_seconds_count 10
`
	const after = `
berth_loop_pass_seconds_bucket{le="0.001"} 10
berth_loop_pass_seconds_bucket{le="0.01"} 100
berth_loop_pass_seconds_bucket{le="0.1"} 110
berth_loop_pass_seconds_bucket{le="+Inf"} 110
berth_attempts_total{pool="burn",reason="succeeded"} 7
berth_attempts_total{pool="burn",reason="cancelled"} 2
`
	mb, err := parseMetrics(strings.NewReader(before))
	if err != nil {
		t.Fatal(err)
	}
	ma, err := parseMetrics(strings.NewReader(after))
	if err != nil {
		t.Fatal(err)
	}
	hb, _ := mb.histogram("berth_loop_pass_seconds")
	ha, ok := ma.histogram("berth_loop_pass_seconds")
	if !ok {
		t.Fatal("histogram not found")
	}
	d := ha.since(hb)
	if d.count() != 100 {
		t.Errorf("count %v, want 100", d.count())
	}
	for _, c := range []struct{ q, want float64 }{
		{0.5, 0.001 + 0.009*50/90},
		{0.9, 0.01},
		{0.99, 0.01 + 0.09*9/10},
	} {
		if got := d.quantile(c.q); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("q%v = %v, want %v", c.q, got, c.want)
		}
	}
	if _, ok := ma.histogram("berth_nothing"); ok {
		t.Error("found a histogram that is not there")
	}
	if n, _ := ma.sum("berth_attempts_total", map[string]string{"reason": "succeeded"}); n != 7 {
		t.Errorf("succeeded %v, want 7", n)
	}
}
