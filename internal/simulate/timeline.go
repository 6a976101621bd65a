package simulate

import (
	"bufio"
	"cmp"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The timeline's geometry, in pixels, and the most it draws: beyond
// these a panel shows its first clusters and attempts only, and says so,
// so that a large run still gives a file a browser opens.
const (
	timelineWidth  = 1200
	timelineLeft   = 110 // room for the clusters' names
	timelineRight  = 20
	timelineRow    = 10
	timelineTitle  = 34
	timelineAxis   = 26
	timelineNote   = 14
	timelineGap    = 18
	timelineLegend = 24

	timelineMaxRows = 400
	timelineMaxBars = 20_000
)

// pipelineColours are told apart by most eyes and leave red to losses.
var pipelineColours = []string{"#4e79a7", "#f28e2b", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac", "#86bcb6"}

// WriteTimeline draws traces as one standalone SVG: a panel per policy,
// in the order given, on one time axis. Each row is a lane of one pool,
// holding its clusters one after another (a cluster takes the first lane
// free when it is requested), so that the rows a pool needs are its most
// clusters at once. Each cluster is a thin bar from its request to its end,
// lighter while booting, and a red cross where it was lost; each attempt
// is a bar on its cluster's row, coloured by pipeline, outlined red when
// lost and dark when it is a re-run. A panel of more than
// timelineMaxRows clusters, or of more attempts than its share of
// timelineMaxBars, draws the first of them and says so in a note.
func WriteTimeline(w io.Writer, traces []*Trace) error {
	from, to := timeSpan(traces)
	var pipelines []string
	for _, t := range traces {
		for _, j := range t.Jobs {
			pipelines = append(pipelines, j.Key.Pipeline)
		}
	}
	slices.Sort(pipelines)
	pipelines = slices.Compact(pipelines)
	colour := map[string]string{}
	for n, p := range pipelines {
		colour[p] = pipelineColours[n%len(pipelineColours)]
	}

	panels := make([]panel, len(traces))
	height := timelineLegend
	for n, t := range traces {
		panels[n] = layOut(t, timelineMaxBars/max(len(traces), 1))
		height += panels[n].height()
	}
	x := func(d time.Duration) float64 {
		return timelineLeft + float64(d-from)/float64(to-from)*(timelineWidth-timelineLeft-timelineRight)
	}

	b := bufio.NewWriter(w)
	fmt.Fprintf(b, `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="10">
<style>.boot{fill:#d9d9d9}.up{fill:#8c8c8c}.rerun{stroke:#222;stroke-width:1}.lost{stroke:#d62728;stroke-width:1.5}.x{stroke:#d62728;stroke-width:1.5}.grid{stroke:#e8e8e8}.name{font-size:8px}.title{font-size:13px;font-weight:bold}</style>
<rect class="legend" width="100%%" height="100%%" fill="#fff"/>
`, timelineWidth, height, timelineWidth, height)
	lx := float64(timelineLeft)
	for _, p := range pipelines {
		fmt.Fprintf(b, `<rect class="legend" x="%.1f" y="8" width="10" height="8" fill="%s"/><text x="%.1f" y="16">%s</text>`+"\n", lx, colour[p], lx+13, esc(p))
		lx += 13 + 6*float64(len(p)) + 14
	}
	fmt.Fprintf(b, `<text x="%.1f" y="16">grey: booting, dark: ready, red outline or cross: lost, dark outline: re-run</text>`+"\n", lx+10)

	ticks := hourTicks(from, to)
	top := timelineLegend
	for n, p := range panels {
		t := traces[n]
		r := t.Measure()
		fmt.Fprintf(b, "<g>\n<text class=\"title\" x=\"%d\" y=\"%d\">%s — cost %.2f, mean latency %s</text>\n",
			10, top+20, esc(t.Policy), r.Cost, time.Duration(r.LatencyMean).Round(time.Second))
		rowsTop := top + timelineTitle
		rowsEnd := rowsTop + len(p.rows)*timelineRow
		for _, tick := range ticks {
			fmt.Fprintf(b, `<line class="grid" x1="%.1f" y1="%d" x2="%.1f" y2="%d"/>`+"\n", x(tick), rowsTop, x(tick), rowsEnd)
		}
		for i, ln := range p.rows {
			y := float64(rowsTop + i*timelineRow)
			mid := y + timelineRow/2
			fmt.Fprintf(b, `<text class="name" x="%d" y="%.1f" text-anchor="end">%s %d</text>`+"\n", timelineLeft-4, mid+3, esc(ln.pool), ln.n+1)
			for _, c := range ln.clusters {
				booted := c.Ended
				if c.Ready >= 0 {
					booted = c.Ready
				}
				fmt.Fprintf(b, `<rect class="boot" x="%.1f" y="%.1f" width="%.1f" height="3"/>`+"\n", x(c.Requested), mid-1.5, barWidth(x(c.Requested), x(booted)))
				if c.Ready >= 0 {
					fmt.Fprintf(b, `<rect class="up" x="%.1f" y="%.1f" width="%.1f" height="3"/>`+"\n", x(c.Ready), mid-1.5, barWidth(x(c.Ready), x(c.Ended)))
				}
				for _, ref := range p.attempts[c.ID] {
					j := t.Jobs[ref.job]
					a := j.Attempts[ref.attempt]
					class := "attempt"
					if ref.attempt > 0 {
						class += " rerun"
					}
					if a.Lost {
						class += " lost"
					}
					fmt.Fprintf(b, `<rect class="%s" x="%.1f" y="%.1f" width="%.1f" height="%d" fill="%s"><title>%s #%d phase %d job %d, attempt %d: %v to %v</title></rect>`+"\n",
						class, x(a.Start), y+1, barWidth(x(a.Start), x(a.End)), timelineRow-2, colour[j.Key.Pipeline],
						esc(j.Key.Pipeline), j.Key.Instance, j.Key.Phase, j.Key.Job, ref.attempt+1, a.Start, a.End)
				}
				if c.Lost {
					cx := x(c.Ended)
					fmt.Fprintf(b, `<path class="x" d="M%.1f %.1fL%.1f %.1fM%.1f %.1fL%.1f %.1f"/>`+"\n", cx-3, mid-3, cx+3, mid+3, cx-3, mid+3, cx+3, mid-3)
				}
			}
		}
		for _, tick := range ticks {
			fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x(tick), rowsEnd+14, hours(tick))
		}
		if p.note != "" {
			fmt.Fprintf(b, `<text class="note" x="%d" y="%d" fill="#d62728">%s</text>`+"\n", timelineLeft, rowsEnd+timelineAxis+10, esc(p.note))
		}
		b.WriteString("</g>\n")
		top += p.height()
	}
	b.WriteString("</svg>\n")
	return b.Flush()
}

// panel is what one policy's panel draws: its rows and, per cluster, the
// attempts on it; note says what was left out.
type panel struct {
	rows     []row
	attempts map[string][]attemptRef
	note     string
}

type attemptRef struct{ job, attempt int }

// row is one lane of a pool: clusters of one pool that did not overlap in time.
type row struct {
	pool     string
	n        int // the lane's number within its pool, from 0
	clusters []Cluster
}

func (p panel) height() int {
	h := timelineTitle + len(p.rows)*timelineRow + timelineAxis + timelineGap
	if p.note != "" {
		h += timelineNote
	}
	return h
}

// layOut orders the trace's clusters by pool (in the order pools first
// appear) and request, and keeps the first of them and of their
// attempts within the limits.
func layOut(t *Trace, maxBars int) panel {
	poolRank := map[string]int{}
	for _, c := range t.Clusters {
		if _, ok := poolRank[c.Pool]; !ok {
			poolRank[c.Pool] = len(poolRank)
		}
	}
	rows := slices.Clone(t.Clusters)
	slices.SortStableFunc(rows, func(a, b Cluster) int {
		return cmp.Or(cmp.Compare(poolRank[a.Pool], poolRank[b.Pool]), cmp.Compare(a.Requested, b.Requested))
	})
	all := map[string][]attemptRef{}
	attempts := 0
	for x, j := range t.Jobs {
		for n, a := range j.Attempts {
			all[a.Cluster] = append(all[a.Cluster], attemptRef{x, n})
			attempts++
		}
	}
	// The clusters come grouped by pool: a pool's lanes follow each other.
	var lanes []row
	first := 0 // the current pool's first lane
	for _, c := range rows {
		if len(lanes) > 0 && lanes[len(lanes)-1].pool != c.Pool {
			first = len(lanes)
		}
		at := first
		for at < len(lanes) {
			if cs := lanes[at].clusters; cs[len(cs)-1].Ended <= c.Requested {
				break
			}
			at++
		}
		if at == len(lanes) {
			lanes = append(lanes, row{pool: c.Pool, n: at - first})
		}
		lanes[at].clusters = append(lanes[at].clusters, c)
	}
	p := panel{rows: lanes[:min(len(lanes), timelineMaxRows)], attempts: map[string][]attemptRef{}}
	drawn, shown := 0, 0
	for _, ln := range p.rows {
		for _, c := range ln.clusters {
			refs := all[c.ID]
			refs = refs[:min(len(refs), maxBars-drawn)]
			p.attempts[c.ID] = refs
			drawn += len(refs)
			shown++
		}
	}
	if shown < len(rows) || drawn < attempts {
		p.note = fmt.Sprintf("thinned: %d of %d clusters and %d of %d attempts are drawn", shown, len(rows), drawn, attempts)
	}
	return p
}

// timeSpan is the time every panel shows: from the run's start (or the
// earliest request before it) to the last end.
func timeSpan(traces []*Trace) (from, to time.Duration) {
	for _, t := range traces {
		for _, c := range t.Clusters {
			from = min(from, c.Requested)
			to = max(to, c.Ended)
		}
		for _, j := range t.Jobs {
			for _, a := range j.Attempts {
				to = max(to, a.End)
			}
		}
		for _, in := range t.Instances {
			to = max(to, in.End)
		}
	}
	if to <= from {
		to = from + time.Hour
	}
	return from, to
}

// hourTicks are round times from from (never above 0) to to, at most a
// dozen.
func hourTicks(from, to time.Duration) []time.Duration {
	steps := []time.Duration{6 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour}
	step := steps[len(steps)-1]
	for _, s := range steps {
		if (to-from)/s <= 12 {
			step = s
			break
		}
	}
	for (to-from)/step > 12 {
		step *= 2
	}
	var ticks []time.Duration
	// Division truncates towards zero: up to a tick, from 0 or below.
	for t := from / step * step; t <= to; t += step {
		ticks = append(ticks, t)
	}
	return ticks
}

// hours writes a tick as hours, to two decimals at most.
func hours(d time.Duration) string {
	return strconv.FormatFloat(math.Round(d.Hours()*100)/100, 'f', -1, 64) + "h"
}

// barWidth keeps a bar of any length visible.
func barWidth(x1, x2 float64) float64 { return max(x2-x1, 0.5) }

func esc(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}
