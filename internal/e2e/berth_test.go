package e2e

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/client"
	"github.com/berthhq/berth/internal/config"
	"github.com/berthhq/berth/internal/wait"
)

// deadline bounds every wait of a test: for a berth to start, for jobs to
// end, for clusters to go.
const deadline = 45 * time.Second

// stopGrace is how long a berth has to exit after SIGTERM before it is
// sent SIGKILL.
const stopGrace = 10 * time.Second

// servingLine is the log line of `berth serve` that says where it listens
// (slog's text format): the config asks for port 0, so this is the only
// way to learn the port.
var servingLine = regexp.MustCompile(`msg="berth serving".* addr=(\S+)`)

// berths are the `berth serve` processes of one test, one after another
// or at once: the directory they run in, their configuration and
// environment, and what they logged.
type berths struct {
	t      *testing.T
	dir    string
	config string
	env    []string
	logs   logs
	starts int
	procs  []*proc
}

// newBerths checks and writes the berth configuration text into a
// directory of the test's; startBerth runs berth on it. At the test's end
// every berth still running is stopped; see cleanup.
func newBerths(t *testing.T, text string) *berths {
	t.Helper()
	if _, err := config.Parse([]byte(text)); err != nil {
		t.Fatalf("the test's berth configuration: %v", err)
	}
	b := &berths{t: t, dir: t.TempDir()}
	b.config = filepath.Join(b.dir, "berth.yaml")
	if err := os.WriteFile(b.config, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	b.env = childEnv(t, b.dir)
	t.Cleanup(b.cleanup)
	return b
}

// cleanup stops every berth still running and, when the test failed,
// puts their logs into the test's log. A berth that exits with an error
// unless it was killed, or is slow to stop, fails the test, and so does a
// race the detector found in berth.
func (b *berths) cleanup() {
	for _, p := range b.procs {
		switch clean := p.stop(); {
		case !clean:
			b.t.Errorf("berth #%d did not exit within %s of SIGTERM", p.n, stopGrace)
		case !p.killed && p.err != nil:
			b.t.Errorf("berth #%d exited: %v", p.n, p.err)
		}
	}
	out := b.logs.String()
	if strings.Contains(out, "WARNING: DATA RACE") {
		b.t.Error("the race detector found a race in berth (see its log)")
	}
	if b.t.Failed() {
		b.t.Logf("berth's logs:\n%s", out)
	}
}

// proc is one `berth serve` child process.
type proc struct {
	t   *testing.T
	n   int // the how-manyth start of the test's berth
	cmd *exec.Cmd
	// client talks to this process's API.
	client *client.Client
	// exited is closed once the process has been reaped, err set;
	// drained once its output has been read to the end.
	exited  chan struct{}
	err     error
	drained chan struct{}
	// killed is set by kill: the process did not exit by itself.
	killed bool
}

// logs keeps the stderr of every berth a test ran, to show when it fails.
type logs struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *logs) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.WriteString(line)
	l.buf.WriteByte('\n')
}

func (l *logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// childEnv is the whole environment of a berth: test credentials and an
// empty AWS configuration in dir, never the machine's, and no instance
// metadata service to ask.
func childEnv(t *testing.T, dir string) []string {
	t.Helper()
	empty := filepath.Join(dir, "aws-empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + dir,
		"TMPDIR=" + dir,
		"AWS_ACCESS_KEY_ID=AKIDE2ETEST",
		"AWS_SECRET_ACCESS_KEY=e2e-test-secret",
		"AWS_CONFIG_FILE=" + empty,
		"AWS_SHARED_CREDENTIALS_FILE=" + empty,
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// startBerth runs `berth serve` on the test's configuration, in its
// directory, and returns once it is ready, its client on the port it
// said it serves on. At the test's end it is stopped (SIGTERM, then
// SIGKILL), and if the test failed, the logs of every berth it ran are
// in its log.
func (b *berths) startBerth() *proc {
	t := b.t
	t.Helper()
	b.starts++
	cmd := exec.Command(binary, "serve", "--config", b.config)
	cmd.Dir = b.dir
	cmd.Env = b.env
	// One pipe for both, so that the log keeps their order; it reaches
	// its end when the process has exited.
	out, in, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = in, in
	err = cmd.Start()
	in.Close()
	if err != nil {
		out.Close()
		t.Fatalf("start berth: %v", err)
	}
	p := &proc{t: t, n: b.starts, cmd: cmd, exited: make(chan struct{}), drained: make(chan struct{})}
	b.procs = append(b.procs, p)
	addr := make(chan string, 1)
	go func() {
		defer close(p.drained)
		defer out.Close()
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			b.logs.add("berth #" + strconv.Itoa(p.n) + " | " + line)
			if m := servingLine.FindStringSubmatch(line); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
		// A line too long to scan: keep the pipe flowing all the same.
		_, _ = io.Copy(io.Discard, out)
	}()
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	select {
	case a := <-addr:
		p.client = client.New("http://"+a, "", nil)
	case <-p.exited:
		t.Fatalf("berth #%d exited before it served: %v", p.n, p.err)
	case <-time.After(deadline):
		t.Fatalf("berth #%d did not say where it serves within %s", p.n, deadline)
	}
	wait.For(t, deadline, "berth to be ready", func() bool {
		return p.client.Readyz(context.Background()) == nil
	})
	return p
}

// kill is kill -9: Berth gets no chance to write or clean up anything.
func (p *proc) kill() {
	p.t.Helper()
	p.killed = true
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.t.Fatalf("kill berth #%d: %v", p.n, err)
	}
	<-p.exited
}

// stop sends SIGTERM and, if the process has not exited after stopGrace,
// SIGKILL, and returns once its output is read. It reports whether the
// process exited by itself.
func (p *proc) stop() (clean bool) {
	defer func() { <-p.drained }()
	select {
	case <-p.exited:
		return true
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.t.Errorf("stop berth #%d: %v", p.n, err)
	}
	select {
	case <-p.exited:
		return true
	case <-time.After(stopGrace):
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.exited
		return false
	}
}
