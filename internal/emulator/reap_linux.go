package emulator

import (
	"errors"

	"golang.org/x/sys/unix"
)

// groupSignals is true where awaitExit tells when a group may be
// signalled safely.
const groupSignals = true

// awaitExit waits until process pid has exited without reaping it: the
// zombie keeps its pid, and so its process group's id, from being
// reused, so that what is left of the group can be killed safely.
func awaitExit(pid int) bool {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			return err == nil
		}
	}
}
