//go:build !race

package testenv

// Race reports whether the race detector is on in this build.
const Race = false
