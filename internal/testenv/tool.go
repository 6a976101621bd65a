package testenv

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Tool is a program a test runs that is installed outside the module.
type Tool struct {
	// Name is the program's name on PATH ("" when PATH is not searched).
	Name string
	// Env names the variable that gives its path; when set, it must be
	// right: nothing else is tried.
	Env string
	// Require names the variable that, set to 1 (as under CI), makes a
	// missing tool fail the test instead of skipping it.
	Require string
	// Venv is its path below the module root, where .ci/run installs it
	// (".venv/bin/moto_server").
	Venv string
	// Install says how to get it, for the skip or failure message.
	Install string
}

// Path is the tool to run: Env's, else Venv's at the module root, else the
// one on PATH. It skips t when there is none, or fails it when Require is
// set to 1.
func (tl Tool) Path(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(tl.Env); p != "" {
		if err := executable(p); err != nil {
			t.Fatalf("%s=%s: %v", tl.Env, p, err)
			return ""
		}
		return p
	}
	if root, ok := ModuleRoot(); ok && tl.Venv != "" {
		p := filepath.Join(root, tl.Venv)
		if executable(p) == nil {
			return p
		}
	}
	if tl.Name != "" {
		if p, err := exec.LookPath(tl.Name); err == nil {
			return p
		}
	}
	missing := tl.Venv + " not found: set " + tl.Env + ", or " + tl.Install
	if os.Getenv(tl.Require) == "1" {
		t.Fatal(missing + " (" + tl.Require + "=1 makes this a failure)")
	} else {
		t.Skip(missing)
	}
	return ""
}

// executable says why path is not a file that can be run, if it is not.
func executable(path string) error {
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		return err
	case fi.IsDir() || fi.Mode().Perm()&0o111 == 0:
		return errors.New("not an executable file")
	}
	return nil
}

// ModuleRoot is the nearest directory above the working directory (a
// test's package directory) that holds go.mod.
func ModuleRoot() (string, bool) {
	dir, err := os.Getwd()
	if err != nil {
		return "", false
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}
