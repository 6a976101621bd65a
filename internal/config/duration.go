package config

import (
	"fmt"
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

// UnmarshalYAML reads a duration string. Its errors are YAML type errors, so
// the decoder reports them with their line beside every other such error.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	bad := func(why string) error {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf(
			"line %d: %s: write a duration such as \"30s\", \"10m\" or \"1h\"", n.Line, why)}}
	}
	if n.Kind != yaml.ScalarNode {
		return bad("a duration must be a string")
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return bad(fmt.Sprintf("invalid duration %q", n.Value))
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes d as a duration string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }
