// Package airflow runs the berth-airflow package's Python tests (pytest,
// inside a real Airflow, against a real berth serve built from this
// module) as part of the repository's go test ./....
//
// The Python is BERTH_AIRFLOW_PYTHON, else .venv-airflow/bin/python at the
// module root, where .ci/run installs Airflow from constraints.txt and
// this package. Without one the test skips, or fails when
// BERTH_REQUIRE_AIRFLOW=1, as under CI.
package airflow

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/testenv"
)

var python = testenv.Tool{
	Env:     "BERTH_AIRFLOW_PYTHON",
	Require: "BERTH_REQUIRE_AIRFLOW",
	Venv:    ".venv-airflow/bin/python",
	Install: "run .ci/run, which installs Airflow and berth-airflow into .venv-airflow at the repository root",
}

func TestPython(t *testing.T) {
	py := python.Path(t)
	berth, err := testenv.BuildBerth(t.TempDir(), os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if d, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-30*time.Second))
		defer cancel()
	}
	// -p no:cacheprovider: nothing written into the source tree.
	cmd := exec.CommandContext(ctx, py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout=600", "-rfEs", "tests")
	cmd.Dir = dir
	// The source under test, ahead of the copy installed in the venv; the
	// berth the fixtures start.
	cmd.Env = append(os.Environ(), "PYTHONPATH="+dir, "BERTH_BIN="+berth, "PYTHONDONTWRITEBYTECODE=1")
	// pytest and the servers it starts are one process group, ended
	// together if the test runs out of time.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	sc := bufio.NewScanner(&out)
	sc.Buffer(nil, 1<<20)
	last := ""
	for sc.Scan() {
		t.Log(sc.Text())
		if s := strings.TrimSpace(sc.Text()); s != "" {
			last = s
		}
	}
	if err != nil {
		t.Fatalf("pytest: %v: %s", err, last)
	}
	if strings.Contains(last, "skipped") {
		t.Errorf("pytest skipped tests here (%s): every test must run", last)
	}
}
