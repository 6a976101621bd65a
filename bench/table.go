package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"
)

// results are the raw numbers of a run by key ("berth.burn32.jobs_per_s"),
// and, for a number that could not be had, why.
type results struct {
	mu     sync.Mutex
	values map[string]float64
	notes  map[string]string
	// failed are the key prefixes of the steps that failed.
	failed []string
}

func newResults() *results {
	return &results{values: map[string]float64{}, notes: map[string]string{}}
}

func (r *results) set(key string, v float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.values[key] = v
}

func (r *results) na(key, why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notes[key] = why
}

func (r *results) fail(prefixes ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = append(r.failed, prefixes...)
}

func (r *results) get(key string) (float64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.values[key]
	return v, ok
}

func (r *results) note(key string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n, ok := r.notes[key]; ok {
		return n
	}
	for _, p := range r.failed {
		if strings.HasPrefix(key, p) {
			return "failed"
		}
	}
	return "—"
}

// row is one line of the table: a measure, the keys of Berth's and River's
// numbers, and the goal. met judges the numbers (River's is NaN when
// there is none); nil means the row has no goal.
type row struct {
	Measure string `json:"measure"`
	Berth   string `json:"berth"`
	River   string `json:"river"`
	Ratio   string `json:"ratio"`
	Goal    string `json:"goal"`
	Met     string `json:"met"`

	berthKey, riverKey string
	unit               string
	met                func(b, r float64) bool
}

func rows(o options) []row {
	burn := func(slots int) row {
		return row{
			Measure:  fmt.Sprintf("B1 burn-down of %s jobs, %s slots", count(o.burnJobs), count(slots)),
			berthKey: fmt.Sprintf("berth.burn%d.jobs_per_s", slots), riverKey: fmt.Sprintf("river.burn%d.jobs_per_s", slots),
			unit: "jobs/s", Goal: "≥5,000/s and ≥2× River",
			met: func(b, r float64) bool { return b >= 5000 && b >= 2*r },
		}
	}
	c := strconv.Itoa(o.clients)
	scale := fmt.Sprintf(" (%s queued, %s clusters)", count(o.scaleJobs), count(o.scaleClusters))
	return []row{
		burn(32),
		burn(1024),
		{Measure: "B2 submit, " + c + " clients", berthKey: "berth.submit" + c + ".jobs_per_s", riverKey: "river.insert" + c + ".jobs_per_s",
			unit: "jobs/s", Goal: "≥10,000/s", met: func(b, _ float64) bool { return b >= 10000 }},
		{Measure: "B2 submit, " + c + " clients, p99", berthKey: "berth.submit" + c + ".p99_ms", riverKey: "river.insert" + c + ".p99_ms",
			unit: "ms", Goal: "≤20 ms", met: func(b, _ float64) bool { return b <= 20 }},
		{Measure: "B2 submit, 1 client", berthKey: "berth.submit1.jobs_per_s", riverKey: "river.insert1.jobs_per_s", unit: "jobs/s",
			Goal: "≥ River", met: func(b, r float64) bool { return b >= r }},
		{Measure: "B2 submit, 1 client, p99", berthKey: "berth.submit1.p99_ms", riverKey: "river.insert1.p99_ms", unit: "ms"},
		{Measure: "B2 batch of 1,000 (River: InsertMany)", berthKey: "berth.batch.jobs_per_s", riverKey: "river.insertmany.jobs_per_s",
			unit: "jobs/s", Goal: "≥50,000/s", met: func(b, _ float64) bool { return b >= 50000 }},
		{Measure: "B3 submit → step started, p99", berthKey: "berth.dispatch.started.p99_ms", unit: "ms",
			Goal: "≤20 ms", met: func(b, _ float64) bool { return b <= 20 }},
		{Measure: "B3 submit → seen succeeded, p99", berthKey: "berth.dispatch.succeeded.p99_ms", unit: "ms",
			Goal: "≤50 ms", met: func(b, _ float64) bool { return b <= 50 }},
		// B4's goals are for 1,000,000 queued jobs (the default).
		{Measure: "B4 loop pass, p99" + scale, berthKey: "berth.scale.loop_pass.p99_ms", unit: "ms",
			Goal: "≤10 ms", met: func(b, _ float64) bool { return b <= 10 }},
		{Measure: "B4 submit p99, empty queue", berthKey: "berth.scale.submit_empty.p99_ms", unit: "ms"},
		{Measure: "B4 submit p99, full queue" + scale, berthKey: "berth.scale.submit_full.p99_ms", unit: "ms", Goal: "as with the queue empty"},
		{Measure: "B4 server RSS" + scale, berthKey: "berth.scale.rss_mib", unit: "MiB",
			Goal: "≤1 GiB", met: func(b, _ float64) bool { return b <= 1024 }},
		{Measure: "B4 server peak RSS (VmHWM)", berthKey: "berth.scale.hwm_mib", unit: "MiB"},
		{Measure: "B4 restart to /readyz 200", berthKey: "berth.scale.restart_ready_s", unit: "s",
			Goal: "≤5 s", met: func(b, _ float64) bool { return b <= 5 }},
		{Measure: "B4 SIGTERM to exit", berthKey: "berth.scale.sigterm_exit_s", unit: "s",
			Goal: "≤1 s", met: func(b, _ float64) bool { return b <= 1 }},
		{Measure: "local provider, 32 slots, `true` over HTTP", berthKey: "berth.local.jobs_per_s", unit: "jobs/s",
			Goal: "≥1,000/s", met: func(b, _ float64) bool { return b >= 1000 }},
	}
}

// fill renders a row's numbers from the results.
func (w row) fill(res *results) row {
	b, hasB := res.get(w.berthKey)
	r, hasR := math.NaN(), false
	w.Berth, w.River, w.Ratio, w.Met = res.note(w.berthKey), "—", "—", "—"
	if w.riverKey != "" {
		w.River = res.note(w.riverKey)
		if v, ok := res.get(w.riverKey); ok {
			r, hasR = v, true
			w.River = format(v, w.unit)
		}
	}
	if w.Goal == "" {
		w.Goal = "—"
	}
	if !hasB {
		if w.met != nil {
			w.Met = "n/a"
		}
		return w
	}
	w.Berth = format(b, w.unit)
	if hasR && r != 0 {
		w.Ratio = fmt.Sprintf("%.2f×", b/r)
	}
	if w.met != nil {
		w.Met = "no"
		if w.met(b, r) {
			w.Met = "yes"
		}
	}
	return w
}

func format(v float64, unit string) string {
	switch unit {
	case "jobs/s":
		return count(int(math.Round(v))) + "/s"
	case "ms":
		if v < 10 {
			return fmt.Sprintf("%.2f ms", v)
		}
		return fmt.Sprintf("%.1f ms", v)
	case "s":
		return fmt.Sprintf("%.2f s", v)
	case "MiB":
		return fmt.Sprintf("%.0f MiB", v)
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

// count writes n with thousands separators: 100,000.
func count(n int) string {
	s := strconv.Itoa(n)
	if n < 0 {
		return "-" + count(-n)
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// printTable writes the table in Markdown, ready for BENCHMARKS.md.
func printTable(w io.Writer, rs []row) {
	fmt.Fprintln(w, "| measure | Berth | River | ratio (Berth ÷ River) | goal | met? |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, r := range rs {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", r.Measure, r.Berth, r.River, r.Ratio, r.Goal, r.Met)
	}
}

// report is the JSON of a run: what was run, every raw number, and the
// table's rows.
type report struct {
	Options map[string]any     `json:"options"`
	Values  map[string]float64 `json:"values"`
	Notes   map[string]string  `json:"notes"`
	Rows    []row              `json:"rows"`
	Seconds float64            `json:"seconds"`
	// LoadBefore and LoadAfter are the load averages at the start and
	// the end of the run.
	LoadBefore string `json:"load_before"`
	LoadAfter  string `json:"load_after"`
	// Steps says how long each step took and how busy the machine was
	// at its end.
	Steps map[string]stepRun `json:"steps"`
}

type stepRun struct {
	Seconds   float64 `json:"seconds"`
	LoadAfter string  `json:"load_after"`
}

func writeJSON(w io.Writer, rep report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}
