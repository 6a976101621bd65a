package e2e

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// binary is the berth command the tests run, built once by TestMain.
var binary string

// parallel is how many tests run at once by default: all of them.
const parallel = 32

// TestMain builds berth from this module into a temporary directory (with
// the race detector when the tests have it, so that a race in Berth shows
// up in its log), runs the tests, and removes the build.
func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse()
	// The tests wait on EMR's pace (Berth polls a cluster every few
	// seconds to stay within EMR's rate limits), not on the processor:
	// run them all at once unless told otherwise.
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		_ = flag.Set("test.parallel", strconv.Itoa(parallel))
	}
	dir, err := os.MkdirTemp("", "berth-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	goCmd, err := exec.LookPath("go")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: the go command is needed to build berth:", err)
		return 1
	}
	binary = filepath.Join(dir, "berth")
	args := []string{"build", "-o", binary}
	if raceEnabled {
		args = append(args, "-race")
	}
	// By import path, so that the build is of this module wherever the
	// test runs from.
	build := exec.Command(goCmd, append(args, "github.com/berthhq/berth/cmd/berth")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build berth:", err)
		return 1
	}
	return m.Run()
}
