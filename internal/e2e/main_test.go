package e2e

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/berthhq/berth/internal/testenv"
)

// binary is the berth command the tests run, built once by TestMain.
var binary string

// parallel is how many tests run at once by default: all of them.
const parallel = 32

// TestMain builds berth from this module into a temporary directory (see
// testenv.BuildBerth), runs the tests, and removes the build.
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
	if binary, err = testenv.BuildBerth(dir, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	return m.Run()
}
