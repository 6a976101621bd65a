package local_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/provider/local"
	"github.com/berthhq/berth/internal/provider/providertest"
)

// forger is a step that writes a successful exit status wherever it finds,
// or guesses, the provider's records of it, and then fails. Its arguments:
// the fence (it writes only under it: the provider's Dir), how it looks
// (see TestStepCannotForgeItsExit), a file to list what it forged in, and
// a file whose appearance lets it end. An exit file it forges also gets an
// exit.tmp directory beside it, which kept the wrapper of an earlier
// version, which wrote exit.tmp and renamed it, from replacing it.
const forger = `fence=$1 how=$2 marker=$3 release=$4 forged=
forge() {
	case $1 in "$fence"|"$fence"/*) ;; *) return 0 ;; esac
	[ -d "$1" ] || return 0
	printf '%s\n' "$2" >"$1/exit" || return 0
	mkdir "$1/exit.tmp" 2>/dev/null
	: >"$1/ran"
	forged="$forged$1/exit
"
}
done_forging() { printf '%s' "$1" >"$marker.tmp" && mv "$marker.tmp" "$marker"; }
records=$(dirname "$(readlink /proc/$$/fd/1)")
case $how in
near)
	d=$(pwd -P)
	while :; do forge "$d" 0; [ "$d" = / ] && break; d=$(dirname "$d"); done
	for v in $(env | sed -n 's/^\(BERTH_[A-Za-z0-9_]*\)=.*/\1/p') PWD OLDPWD; do
		eval "p=\${$v-}"
		case $p in /*) forge "$p" 0; forge "$(dirname "$p")" 0 ;; esac
	done ;;
records)
	forge "$records" 0 ;;
hash)
	forge "$records" "0 $(sed -n 's/.*"ok_hash": *"\([0-9a-f]*\)".*/\1/p' "$records/step.json")" ;;
everything)
	for d in $(find "$fence" -type d); do forge "$d" 0; done ;;
later)
	# A child outlives the step, waits for the wrapper's record of the
	# failure and makes it say 0 with the token it found there.
	(
		i=0
		while [ $i -lt 2000 ]; do
			t=$(sed -n 's/^1 //p' "$records/exit" 2>/dev/null)
			[ -n "$t" ] && break
			i=$((i + 1)); sleep 0.01
		done
		printf '0 %s\n' "$t" >"$records/exit.new" && mv -f "$records/exit.new" "$records/exit"
		done_forging "$records/exit
"
	) &
	exit 1 ;;
esac
done_forging "$forged"
while [ ! -e "$release" ]; do sleep 0.01; done
exit 1`

// TestStepCannotForgeItsExit: a step that writes a successful exit status
// into whatever it can find of its records, and then exits 1, is reported
// failed, both while it runs and after, by the Provider that watched it and
// by a new one over the same Dir.
func TestStepCannotForgeItsExit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		how  string
		// reaches: the forger must have found its own exit file.
		reaches bool
		// later: the forgery comes after the wrapper's record, from a
		// child the step left behind.
		later bool
		code  int // -1: no exit code
		// message starts the message of the step as a fresh read finds it.
		message string
	}{
		{
			// What a step is told: where it runs, its environment.
			name: "in its working directory, the ones above it and the paths of its environment", how: "near",
			code: 1, message: "exited with code 1",
		},
		// A forgery that comes before the step's end is written over by
		// the wrapper's own record: the step's true code.
		{
			// What it may find out: its output goes to its record dir.
			name: "in its record directory, found through its stdout", how: "records",
			reaches: true, code: 1, message: "exited with code 1",
		},
		{
			name: "with the token hash from its record", how: "hash",
			reaches: true, code: 1, message: "exited with code 1",
		},
		{
			name: "in every directory under the provider's", how: "everything",
			reaches: true, code: 1, message: "exited with code 1",
		},
		{
			name: "after the wrapper, with the token the wrapper wrote", how: "later",
			reaches: true, later: true, code: -1, message: local.MessageForgedExit,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			fence, err := filepath.EvalSymlinks(dir)
			if err != nil {
				t.Fatal(err)
			}
			p := newProvider(t, local.Options{Dir: dir})
			cluster := providertest.CreateReady(t, p, deadline)
			fresh := func() *local.Provider { return newProvider(t, local.Options{Dir: dir}) }
			aside := t.TempDir()
			marker, release := filepath.Join(aside, "forged"), filepath.Join(aside, "release")
			id := submit(t, p, cluster, providertest.NewStepName(), sh(forger, fence, tt.how, marker, release))

			var forged []string
			waitUntil(t, "done forging", func() bool {
				b, err := os.ReadFile(marker)
				forged = strings.Fields(string(b))
				return err == nil
			})
			logs, err := p.StepLogs(context.Background(), cluster, id)
			if err != nil {
				t.Fatal(err)
			}
			records, err := filepath.EvalSymlinks(logs.Location)
			if err != nil {
				t.Fatal(err)
			}
			switch own := slices.Contains(forged, filepath.Join(records, "exit")); {
			case len(forged) == 0:
				t.Fatalf("the forger found nothing to forge; stderr %q", logs.Stderr)
			case tt.reaches && !own:
				t.Fatalf("the forger wrote %v, not its own exit file in %s", forged, records)
			case !tt.reaches && own:
				t.Fatalf("the forger found its exit file in %s from where it was told it runs", records)
			}

			if !tt.later {
				for _, q := range []*local.Provider{p, fresh()} {
					if s, err := providertest.FindStep(q, cluster, id); err != nil || s == nil || s.State != berth.StepRunning {
						t.Fatalf("after the forgery the step is %v (err %v), want it running", s, err)
					}
				}
				if err := os.WriteFile(release, nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			s := providertest.WaitStep(t, p, cluster, id, deadline, "ended", providertest.Terminal)
			if s.State != berth.StepFailed || s.ExitCode != nil && *s.ExitCode == 0 {
				t.Fatalf("the forging step ended %s, want failed", providertest.Format(s))
			}
			s2, err := providertest.FindStep(fresh(), cluster, id)
			if err != nil || s2 == nil {
				t.Fatalf("a new Provider finds %v, %v", s2, err)
			}
			switch {
			case s2.State != berth.StepFailed || !strings.HasPrefix(s2.Message, tt.message):
				t.Fatalf("a new Provider reads %s, want failed: %s", providertest.Format(*s2), tt.message)
			case tt.code < 0 && s2.ExitCode != nil:
				t.Fatalf("a new Provider reads %s, want no exit code", providertest.Format(*s2))
			case tt.code >= 0 && (s2.ExitCode == nil || *s2.ExitCode != tt.code):
				t.Fatalf("a new Provider reads %s, want exit code %d", providertest.Format(*s2), tt.code)
			}
		})
	}
}

// TestStepIsNotToldWhereItsRecordsAre: neither the working directory nor
// the environment of a step names its records, nor holds the tokens its
// wrapper signs the exit status with, even where the step's environment
// has variables of the wrapper's names.
func TestStepIsNotToldWhereItsRecordsAre(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := newProvider(t, local.Options{Dir: dir})
	cluster := providertest.CreateReady(t, p, deadline)
	step := sh(`pwd -P; env`)
	step.Env = map[string]string{"_berth_go": "x", "_berth_ok": "x", "_berth_fail": "x"}
	id := submit(t, p, cluster, providertest.NewStepName(), step)
	if s := providertest.WaitStep(t, p, cluster, id, deadline, "ended", providertest.Terminal); s.State != berth.StepSucceeded {
		t.Fatalf("step ended %s", providertest.Format(s))
	}
	logs, err := p.StepLogs(context.Background(), cluster, id)
	if err != nil {
		t.Fatal(err)
	}
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, records := range []string{filepath.Join(dir, "clusters"), filepath.Join(root, "clusters")} {
		if strings.Contains(logs.Stdout, records) {
			t.Fatalf("the step was told of %s:\n%s", records, logs.Stdout)
		}
	}
	b, err := os.ReadFile(filepath.Join(logs.Location, "step.json"))
	if err != nil {
		t.Fatal(err)
	}
	var hashes struct {
		OK   string `json:"ok_hash"`
		Fail string `json:"fail_hash"`
	}
	if err := json.Unmarshal(b, &hashes); err != nil || hashes.OK == "" || hashes.Fail == "" {
		t.Fatalf("step.json %s (err %v) has no token hashes", b, err)
	}
	words := strings.FieldsFunc(logs.Stdout, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	for _, w := range words {
		sum := sha256.Sum256([]byte(w))
		if h := hex.EncodeToString(sum[:]); h == hashes.OK || h == hashes.Fail {
			t.Fatalf("the step saw an exit token in its environment:\n%s", logs.Stdout)
		}
	}
}

// TestStepCannotRedirectOrBlockItsExit: a step that puts a link or a pipe
// where its wrapper writes the exit file, and then succeeds, is reported
// failed: the wrapper writes through neither, so it neither blocks on the
// pipe nor writes into the file the link names.
func TestStepCannotRedirectOrBlockItsExit(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ name, make string }{
		{"a link", `ln -s "$2" "$records/exit"`},
		{"a pipe", `mkfifo "$records/exit"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			p := newProvider(t, local.Options{Dir: dir})
			cluster := providertest.CreateReady(t, p, deadline)
			target := filepath.Join(t.TempDir(), "target")
			if err := os.WriteFile(target, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			script := `records=$(dirname "$(readlink /proc/$$/fd/1)"); ` + tt.make + ` || exit 3; exit 0`
			id := submit(t, p, cluster, providertest.NewStepName(), sh(script, "step", target))
			s := providertest.WaitStep(t, p, cluster, id, deadline, "ended", providertest.Terminal)
			if s.State != berth.StepFailed || !strings.HasPrefix(s.Message, local.MessageForgedExit) {
				t.Fatalf("the step ended %s, want failed: %s", providertest.Format(s), local.MessageForgedExit)
			}
			if b, err := os.ReadFile(target); err != nil || len(b) != 0 {
				t.Fatalf("the link's target holds %q (err %v), want it untouched", b, err)
			}
		})
	}
}
