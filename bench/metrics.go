package main

import (
	"bufio"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
)

// metrics is one scrape of GET /metrics in Prometheus' text format, parsed
// just enough for counters and histograms (this module keeps out of
// Prometheus' client libraries).
type metrics []sample

type sample struct {
	name   string
	labels map[string]string
	value  float64
}

func parseMetrics(r io.Reader) (metrics, error) {
	var m metrics
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		s, ok := parseSample(line)
		if ok {
			m = append(m, s)
		}
	}
	return m, sc.Err()
}

// parseSample reads `name{k="v",...} value [timestamp]`. Label values with
// escaped quotes do not occur in the metrics read here.
func parseSample(line string) (sample, bool) {
	s := sample{labels: map[string]string{}}
	rest := line
	if i := strings.IndexByte(line, '{'); i >= 0 {
		j := strings.LastIndexByte(line, '}')
		if j < i {
			return s, false
		}
		s.name, rest = line[:i], strings.TrimSpace(line[j+1:])
		for _, kv := range strings.Split(line[i+1:j], ",") {
			k, v, ok := strings.Cut(kv, "=")
			if ok {
				s.labels[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"`)
			}
		}
	} else {
		name, r, ok := strings.Cut(line, " ")
		if !ok {
			return s, false
		}
		s.name, rest = name, strings.TrimSpace(r)
	}
	f := strings.Fields(rest)
	if len(f) == 0 {
		return s, false
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return s, false
	}
	s.value = v
	return s, true
}

// sum adds the samples of a name whose labels include every pair of want.
func (m metrics) sum(name string, want map[string]string) (total float64, found bool) {
	for _, s := range m {
		if s.name != name || !hasLabels(s, want) {
			continue
		}
		total += s.value
		found = true
	}
	return total, found
}

func hasLabels(s sample, want map[string]string) bool {
	for k, v := range want {
		if s.labels[k] != v {
			return false
		}
	}
	return true
}

// histogram is a Prometheus histogram's cumulative bucket counts by upper
// bound, summed over its label sets.
type histogram map[float64]float64

func (m metrics) histogram(name string) (histogram, bool) {
	h := histogram{}
	for _, s := range m {
		if s.name != name+"_bucket" {
			continue
		}
		le, err := strconv.ParseFloat(s.labels["le"], 64)
		if err != nil {
			continue
		}
		h[le] += s.value
	}
	return h, len(h) > 0
}

// since is what the histogram counted after an earlier scrape of it.
func (h histogram) since(before histogram) histogram {
	d := histogram{}
	for le, n := range h {
		d[le] = n - before[le]
	}
	return d
}

// quantile estimates the q-quantile as Prometheus' histogram_quantile
// does: linearly within the bucket it falls in. NaN without observations;
// the largest finite bound when it falls in the +Inf bucket.
func (h histogram) quantile(q float64) float64 {
	bounds := make([]float64, 0, len(h))
	for le := range h {
		bounds = append(bounds, le)
	}
	sort.Float64s(bounds)
	if len(bounds) == 0 {
		return math.NaN()
	}
	total := h[bounds[len(bounds)-1]]
	if total <= 0 {
		return math.NaN()
	}
	rank := q * total
	lower, below := 0.0, 0.0
	for _, le := range bounds {
		n := h[le]
		if n >= rank {
			if math.IsInf(le, 1) {
				return lower
			}
			if n == below {
				return le
			}
			return lower + (le-lower)*(rank-below)/(n-below)
		}
		lower, below = le, n
	}
	return lower
}

func (h histogram) count() float64 {
	c := 0.0
	for _, n := range h {
		c = max(c, n)
	}
	return c
}
