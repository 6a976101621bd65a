package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/berthhq/berth/internal/berth"
)

func TestParseSimPool(t *testing.T) {
	c, err := Parse([]byte(`
pools:
  - name: spot
    provider: sim
    sim:
      boot_time: 7m
      terminate_time: 1m
      loss_per_cluster_hour: 0.2
      step_time: 30s
      poll_interval: 10s
    fallback:
      after_failures: 2
      for: 1h
      sim: {boot_time: 9m}
  - {name: bare, provider: sim}
`))
	if err != nil {
		t.Fatal(err)
	}
	spot, _ := c.Pool("spot")
	want := &SimSpec{BootTime: dur("7m"), TerminateTime: dur("1m"), LossPerClusterHour: 0.2, StepTime: dur("30s"), PollInterval: dur("10s")}
	if !reflect.DeepEqual(spot.Sim, want) {
		t.Errorf("sim = %+v, want %+v", spot.Sim, want)
	}
	if spot.BootTimeout != Duration(DefaultBootTimeoutSim) || spot.Local != nil || spot.EMR != nil {
		t.Errorf("pool = %+v", spot)
	}
	if got, want := spot.FallbackSim(), (&SimSpec{BootTime: dur("9m"), PollInterval: dur("10s")}); !reflect.DeepEqual(got, want) {
		t.Errorf("FallbackSim() = %+v, want %+v", got, want)
	}
	bare, _ := c.Pool("bare")
	if !reflect.DeepEqual(bare.Sim, &SimSpec{}) || bare.FallbackSim() != nil {
		t.Errorf("a sim pool without a sim block has %+v, fallback %+v", bare.Sim, bare.FallbackSim())
	}
}

func TestValidateSimErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"negative times", "pools: [{name: a, provider: sim, sim: {boot_time: -1s, terminate_time: -1s, step_time: -1s}}]",
			[]string{`pool "a": sim.boot_time: must be ≥ 0`, `pool "a": sim.terminate_time: must be ≥ 0`, `pool "a": sim.step_time: must be ≥ 0`}},
		{"boot time over timeout", "pools: [{name: a, provider: sim, boot_timeout: 5m, sim: {boot_time: 5m}}]",
			[]string{`pool "a": sim.boot_time: must be less than the pool's boot_timeout (5m0s)`}},
		{"loss rate", "pools: [{name: a, provider: sim, sim: {loss_per_cluster_hour: -0.5}}]",
			[]string{`pool "a": sim.loss_per_cluster_hour: must be a number ≥ 0`}},
		{"loss rate inf", "pools: [{name: a, provider: sim, sim: {loss_per_cluster_hour: .inf}}]",
			[]string{`pool "a": sim.loss_per_cluster_hour: must be a number ≥ 0`}},
		{"poll interval", "pools: [{name: a, provider: sim, sim: {poll_interval: 2m}}]",
			[]string{`pool "a": sim.poll_interval: must be between 0 (the default) and 1m`}},
		{"other blocks on sim", "pools: [{name: a, provider: sim, local: {}, emr: " + emrSpec + "}]",
			[]string{`pool "a": local: only for local pools`, `pool "a": emr: only for emr pools`}},
		{"sim block on local", "pools: [{name: a, provider: local, sim: {}}]", []string{`pool "a": sim: only for sim pools`}},
		{"sim block on emr", "pools: [{name: a, provider: emr, emr: " + emrSpec + ", sim: {}, fallback: {after_failures: 1, for: 1h, emr: {}, sim: {}}}]",
			[]string{`pool "a": sim: only for sim pools`, `pool "a": fallback.sim: only for sim pools`}},
		{"fallback required", "pools: [{name: a, provider: sim, fallback: {after_failures: 1, for: 1h, local: {}}}]",
			[]string{`pool "a": fallback.local: only for local pools`, `pool "a": fallback.sim: required`}},
		{"fallback fields", "pools: [{name: a, provider: sim, fallback: {after_failures: 1, for: 1h, sim: {boot_time: 30m, loss_per_cluster_hour: -1, poll_interval: 1s}}}]",
			[]string{`pool "a": fallback.sim.boot_time: must be less than the pool's boot_timeout (20m0s)`,
				`pool "a": fallback.sim.loss_per_cluster_hour: must be a number ≥ 0`,
				`pool "a": fallback.sim.poll_interval: set it on the pool's sim block`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.yaml))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", c)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
			if !errors.Is(err, berth.ErrInvalid) {
				t.Errorf("error does not wrap berth.ErrInvalid")
			}
			// Each mistake once, and none made up.
			if n, want := len(strings.Split(err.Error(), "\n")), len(tt.want); n != want {
				t.Errorf("got %d errors, want %d:\n%v", n, want, err)
			}
		})
	}
}

// TestDefaultExampleSimPool keeps the commented sim pool in default.yaml a
// pool that parses.
func TestDefaultExampleSimPool(t *testing.T) {
	text := string(DefaultYAML())
	_, rest, ok := strings.Cut(text, "# --- example sim pool ---\n")
	example, _, ok2 := strings.Cut(rest, "# --- end ---")
	if !ok || !ok2 {
		t.Fatal("default.yaml lost its example sim pool markers")
	}
	var b strings.Builder
	b.WriteString(text)
	for line := range strings.Lines(example) {
		b.WriteString(strings.TrimPrefix(line, "#"))
	}
	c, err := Parse([]byte(b.String()))
	if err != nil {
		t.Fatalf("default.yaml with its sim example uncommented: %v", err)
	}
	p, ok := c.Pool("what-if")
	if !ok || p.Provider != ProviderSim || p.Sim.LossPerClusterHour != 0.1 || p.FallbackSim().LossPerClusterHour != 0 || p.FallbackSim().BootTime != dur("9m") {
		t.Fatalf("example sim pool parsed as %+v", p)
	}
}
