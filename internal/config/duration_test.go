package config

import (
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestDurationUnmarshal(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  string // a substring of the error; empty when in is good
	}{
		{`"30s"`, 30 * time.Second, ""},
		{`10m`, 10 * time.Minute, ""},
		{`1h`, time.Hour, ""},
		{`1h30m`, 90 * time.Minute, ""},
		{`250ms`, 250 * time.Millisecond, ""},
		{`0`, 0, ""},
		{`-1s`, -time.Second, ""}, // parses; Validate refuses it where it matters
		{`30`, 0, `invalid duration "30"`},
		{`soon`, 0, `invalid duration "soon"`},
		{`""`, 0, `invalid duration ""`},
		{`1.5`, 0, `invalid duration "1.5"`},
		{`2562047h`, 2562047 * time.Hour, ""},
		{`999999999h`, 0, `duration out of range: "999999999h"`},
		{`-999999999h`, 0, `duration out of range: "-999999999h"`},
		{`1h1h`, 2 * time.Hour, ""},
		{`[1s]`, 0, "a duration must be a string"},
		{`{h: 1}`, 0, "a duration must be a string"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var v struct {
				D Duration `yaml:"d"`
			}
			err := yaml.Unmarshal([]byte("\nd: "+tt.in+"\n"), &v)
			if tt.err == "" {
				if err != nil {
					t.Fatalf("Unmarshal: %v", err)
				}
				if v.D.Std() != tt.want {
					t.Errorf("got %v, want %v", v.D.Std(), tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Unmarshal accepted %s as %v", tt.in, v.D)
			}
			if !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), "line 2") {
				t.Errorf("error %q does not contain %q and its line", err, tt.err)
			}
		})
	}
}

func TestDurationMarshal(t *testing.T) {
	out, err := yaml.Marshal(struct {
		D Duration `yaml:"d"`
	}{Duration(90 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(out); got != "d: 1m30s\n" {
		t.Errorf("Marshal = %q, want %q", got, "d: 1m30s\n")
	}
}

// TestDurationErrorsInConfig checks that every bad duration of a file is
// reported, each with its pool, field and line, in one error.
func TestDurationErrorsInConfig(t *testing.T) {
	_, err := Parse([]byte(`pools:
  - name: a
    provider: local
    idle_timeout: 30
    boot_timeout: 1 minute
`))
	if err == nil {
		t.Fatal("Parse accepted bad durations")
	}
	for _, w := range []string{
		`pool "a": idle_timeout: invalid duration "30": write a duration such as "30s", "10m" or "1h", or auto (line 4)`,
		`pool "a": boot_timeout: invalid duration "1 minute": write a duration such as "30s", "10m" or "1h" (line 5)`,
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not contain %q:\n%v", w, err)
		}
	}
}

// idle_timeout: auto is its own value, shown as such; any other word is
// refused with both forms named.
func TestIdleTimeoutAuto(t *testing.T) {
	c, err := Parse([]byte("pools:\n  - {name: a, provider: sim, idle_timeout: auto}\n"))
	if err != nil {
		t.Fatal(err)
	}
	p := c.Pools[0]
	if !p.IdleTimeout.Auto() || p.IdleTimeout.Std() != 0 || p.IdleTimeout.String() != "auto" || !p.Domain().IdleAuto {
		t.Errorf("idle_timeout: auto read as %v (domain %+v)", p.IdleTimeout, p.Domain())
	}
	if _, err := Parse([]byte("pools:\n  - {name: a, provider: sim, idle_timeout: soon}\n")); err == nil || !strings.Contains(err.Error(), "or auto") {
		t.Errorf("idle_timeout: soon: %v", err)
	}
}
