package config

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration written in YAML as a Go duration string:
// "30s", "10m", "1h30m". A bare 0 is accepted too; any other number is
// refused, because a unit left out is a mistake waiting to happen.
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String writes d the way the file does.
func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML reads a duration string. Its errors are YAML type errors
// with their line; Parse reports the same mistakes with their pool and
// field instead.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseDuration(n)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %v", n.Line, err)}}
	}
	*d = v
	return nil
}

// durationSyntax is what time.ParseDuration reads, so that a duration it
// refuses anyway is one too long for a time.Duration.
var durationSyntax = regexp.MustCompile(`^[-+]?(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+$`)

func parseDuration(n *yaml.Node) (Duration, error) {
	const hint = `write a duration such as "30s", "10m" or "1h"`
	if n.Kind != yaml.ScalarNode {
		return 0, errors.New("a duration must be a string: " + hint)
	}
	v, err := time.ParseDuration(n.Value)
	switch {
	case err != nil && durationSyntax.MatchString(n.Value):
		return 0, fmt.Errorf("duration out of range: %q, the longest is 2562047h (about 292 years)", n.Value)
	case err != nil:
		return 0, fmt.Errorf("invalid duration %q: %s", n.Value, hint)
	}
	return Duration(v), nil
}

// IdleTimeout is a pool's idle_timeout: a duration, or "auto" (IdleAuto):
// Berth ends an idle cluster early when it expects no work within the
// pool's boot time and keeps it when it does, at most a boot time idle.
type IdleTimeout Duration

// IdleAuto is idle_timeout: auto.
const IdleAuto IdleTimeout = -1

// Auto reports whether the timeout is "auto".
func (d IdleTimeout) Auto() bool { return d == IdleAuto }

// Std returns the fixed timeout; 0 for auto.
func (d IdleTimeout) Std() time.Duration {
	if d.Auto() {
		return 0
	}
	return time.Duration(d)
}

func (d IdleTimeout) String() string {
	if d.Auto() {
		return "auto"
	}
	return Duration(d).String()
}

// UnmarshalYAML reads "auto" or a duration string.
func (d *IdleTimeout) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseIdleTimeout(n)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %v", n.Line, err)}}
	}
	*d = v
	return nil
}

func parseIdleTimeout(n *yaml.Node) (IdleTimeout, error) {
	if n.Kind == yaml.ScalarNode && n.Value == "auto" {
		return IdleAuto, nil
	}
	v, err := parseDuration(n)
	if err != nil {
		return 0, fmt.Errorf("%v, or auto", err)
	}
	return IdleTimeout(v), nil
}

// MarshalYAML writes d as "auto" or a duration string.
func (d IdleTimeout) MarshalYAML() (any, error) { return d.String(), nil }

// MarshalYAML writes d as a duration string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }
