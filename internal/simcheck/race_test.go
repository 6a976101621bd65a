//go:build race

package simcheck

// raceEnabled: the race detector slows a seed about ninefold, so go test
// -race runs fewer, shorter seeds (berth sim check runs more).
const raceEnabled = true
