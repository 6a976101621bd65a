package simulate

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

// drawn is what a timeline shows, read back as XML: the panels' titles,
// the attempts' bars and the notes.
type drawn struct {
	titles   []string
	attempts int
	lost     int
	reruns   int
	notes    []string
}

func readTimeline(t *testing.T, svg []byte) drawn {
	t.Helper()
	var d drawn
	dec := xml.NewDecoder(bytes.NewReader(svg))
	var text *string
	root := true
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if root && tok.Name.Local != "svg" {
				t.Fatalf("root element %s, want svg", tok.Name.Local)
			}
			root = false
			var class []string
			for _, a := range tok.Attr {
				if a.Name.Local == "class" {
					class = strings.Fields(a.Value)
				}
			}
			switch {
			case tok.Name.Local == "rect" && slices.Contains(class, "attempt"):
				d.attempts++
				if slices.Contains(class, "lost") {
					d.lost++
				}
				if slices.Contains(class, "rerun") {
					d.reruns++
				}
			case tok.Name.Local == "text" && slices.Contains(class, "title"):
				d.titles = append(d.titles, "")
				text = &d.titles[len(d.titles)-1]
			case tok.Name.Local == "text" && slices.Contains(class, "note"):
				d.notes = append(d.notes, "")
				text = &d.notes[len(d.notes)-1]
			}
		case xml.CharData:
			if text != nil {
				*text += string(tok)
			}
		case xml.EndElement:
			text = nil
		}
	}
	return d
}

func attemptsOf(tr *Trace) (all, lost, reruns int) {
	for _, j := range tr.Jobs {
		for n, a := range j.Attempts {
			all++
			if a.Lost {
				lost++
			}
			if n > 0 {
				reruns++
			}
		}
	}
	return all, lost, reruns
}

// Every attempt of every policy is a bar, lost ones and re-runs marked,
// under a title per policy in the order given; names that are not XML
// are escaped.
func TestTimelineDrawsEveryAttempt(t *testing.T) {
	w := parse(t, lossy(7, "{pool: a, jobs: 3, duration: 20m}, {pool: a, jobs: 2, duration: 1h}"))
	w.Pipelines[0].Name = `<p&"q">`
	var traces []*Trace
	for _, b := range baselines {
		traces = append(traces, b.run(w))
	}
	traces[0].Policy = "a<b"
	var buf bytes.Buffer
	if err := WriteTimeline(&buf, traces); err != nil {
		t.Fatal(err)
	}
	d := readTimeline(t, buf.Bytes())
	all, lost, reruns := 0, 0, 0
	for _, tr := range traces {
		a, l, r := attemptsOf(tr)
		all, lost, reruns = all+a, lost+l, reruns+r
	}
	if d.attempts != all || d.lost != lost || d.reruns != reruns || lost == 0 || reruns == 0 {
		t.Errorf("drew %d attempts, %d lost, %d re-runs; the traces have %d, %d, %d", d.attempts, d.lost, d.reruns, all, lost, reruns)
	}
	if len(d.notes) != 0 {
		t.Errorf("notes %q on a small run", d.notes)
	}
	if len(d.titles) != len(traces) {
		t.Fatalf("titles %q, want one per trace", d.titles)
	}
	for n, tr := range traces {
		if !strings.HasPrefix(d.titles[n], tr.Policy+" — cost ") || !strings.Contains(d.titles[n], "mean latency") {
			t.Errorf("title %d %q, want %s's", n, d.titles[n], tr.Policy)
		}
	}
	if !strings.Contains(buf.String(), `&lt;p&amp;&#34;q&#34;&gt;`) {
		t.Error("the pipeline's name is not in the drawing, escaped")
	}
}

// A run too large to draw in full is thinned, and says so, rather than
// written out bar by bar.
func TestTimelineThinsALargeRun(t *testing.T) {
	w := parse(t, `
pools:
  - {name: a, provider: sim, slots: 4, price_per_hour: 6, sim: {boot_time: 10m}}
pipelines:
  - {name: p, count: 3000, every: 1m, phases: [{pool: a, jobs: 10, duration: 20m}]}
`)
	var traces []*Trace
	for _, b := range baselines {
		traces = append(traces, b.run(w))
	}
	var buf bytes.Buffer
	if err := WriteTimeline(&buf, traces); err != nil {
		t.Fatal(err)
	}
	d := readTimeline(t, buf.Bytes())
	if len(d.notes) != len(traces) {
		t.Errorf("notes %q, want one per panel", d.notes)
	}
	for _, n := range d.notes {
		if !strings.HasPrefix(n, "thinned:") {
			t.Errorf("note %q", n)
		}
	}
	if d.attempts == 0 || d.attempts > timelineMaxBars {
		t.Errorf("drew %d attempts, want some and at most %d", d.attempts, timelineMaxBars)
	}
	if buf.Len() > 8<<20 {
		t.Errorf("the drawing is %d bytes", buf.Len())
	}
}

// A writer that fails fails the drawing.
func TestTimelineReportsAWriteError(t *testing.T) {
	tr := runOracle(parse(t, twoPools))
	if err := WriteTimeline(failingWriter{}, []*Trace{tr}); err == nil {
		t.Error("no error from a writer that fails")
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// Clusters of a pool that do not overlap share a lane: a pool takes as
// many rows as it had clusters at once.
func TestTimelineLanes(t *testing.T) {
	c := func(id, pool string, from, to time.Duration) Cluster {
		return Cluster{ID: id, Pool: pool, Requested: from, Ready: from, Ended: to, Slots: 1}
	}
	tr := &Trace{Policy: "p", Clusters: []Cluster{
		c("a-0", "a", 0, time.Hour), c("a-1", "a", 30*time.Minute, 2*time.Hour),
		c("a-2", "a", time.Hour, 3*time.Hour), c("b-0", "b", 0, time.Hour), c("b-1", "b", 2*time.Hour, 3*time.Hour),
	}}
	p := layOut(tr, 100)
	var got []string
	for _, r := range p.rows {
		var ids []string
		for _, c := range r.clusters {
			ids = append(ids, c.ID)
		}
		got = append(got, r.pool+":"+strings.Join(ids, ","))
	}
	want := []string{"a:a-0,a-2", "a:a-1", "b:b-0,b-1"}
	if !slices.Equal(got, want) {
		t.Errorf("lanes %v, want %v", got, want)
	}
}
