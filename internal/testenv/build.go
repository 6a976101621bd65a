package testenv

import (
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
)

// BuildBerth builds the berth command of this module into dir, with the
// race detector when the running test binary has it (so that a race in a
// berth process a test starts shows in that process's log), and returns
// its path. The build's output goes to log.
func BuildBerth(dir string, log io.Writer) (string, error) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("the go command is needed to build berth: %w", err)
	}
	binary := filepath.Join(dir, "berth")
	args := []string{"build", "-o", binary}
	if Race {
		args = append(args, "-race")
	}
	// By import path, so that the build is of this module wherever the
	// test runs from.
	build := exec.Command(goCmd, append(args, "github.com/berthhq/berth/cmd/berth")...)
	build.Stdout, build.Stderr = log, log
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("build berth: %w", err)
	}
	return binary, nil
}
