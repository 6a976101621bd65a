//go:build !linux

package emulator

// groupSignals is false here: without a wait that does not reap, a
// group's id could be another's by the time it is signalled, so signals
// go to the step's process alone (os.Process knows when it was reaped).
const groupSignals = false

// awaitExit cannot wait without reaping here.
func awaitExit(int) bool { return false }
