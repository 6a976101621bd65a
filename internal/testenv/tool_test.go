package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

// outcome records how Path ended a test instead of ending it.
type outcome struct {
	testing.TB
	fatal, skip bool
}

func (o *outcome) Helper()               {}
func (o *outcome) Fatal(...any)          { o.fatal = true }
func (o *outcome) Fatalf(string, ...any) { o.fatal = true }
func (o *outcome) Skip(...any)           { o.skip = true }

func TestToolLookupOrder(t *testing.T) {
	tool := Tool{Name: "moto_server", Env: "BERTH_MOTO_SERVER", Require: "BERTH_REQUIRE_MOTO", Venv: ".venv/bin/moto_server"}
	// A module with .venv/bin/moto_server, and a directory for PATH with
	// another, both fakes that are never run.
	dir := t.TempDir()
	module, onPath := filepath.Join(dir, "module"), filepath.Join(dir, "bin")
	venv := filepath.Join(module, ".venv", "bin", "moto_server")
	explicit := filepath.Join(dir, "explicit", "moto_server")
	for _, p := range []string{venv, explicit, filepath.Join(onPath, "moto_server")} {
		writeExecutable(t, p)
	}
	writeFile(t, filepath.Join(module, "go.mod"), "module example.test\n", 0o644)
	writeFile(t, filepath.Join(dir, "not-executable"), "", 0o644)
	bare := filepath.Join(dir, "bare") // a module without .venv
	writeFile(t, filepath.Join(bare, "go.mod"), "module example.test\n", 0o644)

	tests := []struct {
		name, server, require, cwd, path string
		want                             string
		fatal, skip                      bool
	}{
		{name: "env first", server: explicit, cwd: module, path: onPath, want: explicit},
		{name: "env wrong fails, whatever else there is", server: filepath.Join(dir, "not-executable"), cwd: module, path: onPath, fatal: true},
		{name: "env missing fails", server: filepath.Join(dir, "nowhere"), cwd: module, path: onPath, fatal: true},
		{name: "venv before PATH", cwd: module, path: onPath, want: venv},
		{name: "venv from a package directory", cwd: filepath.Join(module, ".venv"), path: onPath, want: venv},
		{name: "PATH last", cwd: bare, path: onPath, want: filepath.Join(onPath, "moto_server")},
		{name: "none skips", cwd: bare, path: filepath.Join(dir, "empty"), skip: true},
		{name: "none fails when required", require: "1", cwd: bare, path: filepath.Join(dir, "empty"), fatal: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(tool.Env, tt.server)
			t.Setenv(tool.Require, tt.require)
			t.Setenv("PATH", tt.path)
			t.Chdir(tt.cwd)
			o := &outcome{TB: t}
			got := tool.Path(o)
			if got != tt.want || o.fatal != tt.fatal || o.skip != tt.skip {
				t.Errorf("Path() = %q, fatal %v, skip %v; want %q, fatal %v, skip %v", got, o.fatal, o.skip, tt.want, tt.fatal, tt.skip)
			}
		})
	}
}

func writeExecutable(t *testing.T, path string) {
	writeFile(t, path, "#!/bin/sh\nexit 1\n", 0o755)
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}
