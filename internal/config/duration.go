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

// MarshalYAML writes d as a duration string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }
