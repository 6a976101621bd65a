package moto

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/wait"
)

// startTimeout bounds the wait for a new moto_server to answer. It takes
// a second or two on an idle machine (importing moto is most of it); the
// margin is for a busy one.
const startTimeout = 60 * time.Second

// startAttempts is how many ports Start tries: the free port it picks is
// closed again before moto_server binds it, and another process may take
// it meanwhile.
const startAttempts = 3

// process is one moto_server this package started.
type process struct {
	bin, url string
	cmd      *exec.Cmd
	out      *output
	// exited is closed when the server's output ends, that is when it has
	// exited; it is not reaped before stop, so that its pid (and process
	// group) cannot be reused by another process while stop may kill it.
	exited chan struct{}
	// release ends the thread that started the server (see spawn).
	release  chan struct{}
	stopOnce sync.Once
}

// launch starts bin and waits until it answers, trying another port when
// it exits first.
func launch(t testing.TB, bin string) *process {
	t.Helper()
	var p *process
	for range startAttempts {
		var err error
		p, err = spawn(bin, freePort(t))
		if err != nil {
			t.Fatalf("starting %s: %v", bin, err)
		}
		if p.await(t) {
			return p
		}
	}
	t.Fatalf("%s exited before it answered, on %d ports; %s", bin, startAttempts, p.describe(0))
	return nil
}

// await waits until p answers (true) or exits (false), and fails t if
// neither happens in time. p is stopped unless it answers.
func (p *process) await(t testing.TB) bool {
	t.Helper()
	up, settled := false, false
	defer func() {
		if up {
			return
		}
		if !settled { // wait.For failed t and is ending it
			t.Logf("%s", p.describe(0))
		}
		p.stop()
	}()
	wait.For(t, startTimeout, fmt.Sprintf("%s to answer on %s", p.bin, p.url), func() bool {
		up = p.answers()
		return up || p.hasExited()
	})
	settled = true
	return up
}

// spawn starts moto_server on port, as the leader of a process group of
// its own so that stop kills all of it. The thread that forks it is kept
// until stop: on Linux the server is killed when that thread ends
// (dieWithParent), so that a test binary that dies without running its
// cleanups (a panic, -timeout) leaves no server behind; Go would end a
// thread at will otherwise only when a goroutine leaves it locked.
func spawn(bin string, port int) (*process, error) {
	host := "127.0.0.1"
	p := &process{
		bin:     bin,
		url:     "http://" + net.JoinHostPort(host, strconv.Itoa(port)),
		cmd:     exec.Command(bin, "-H", host, "-p", strconv.Itoa(port)),
		out:     &output{},
		exited:  make(chan struct{}),
		release: make(chan struct{}),
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	dieWithParent(p.cmd.SysProcAttr)
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		err := p.cmd.Start()
		started <- err
		if err != nil {
			runtime.UnlockOSThread()
			return
		}
		<-p.release
		// Returning still locked ends the thread; the server is gone.
	}()
	err = <-started
	w.Close()
	if err != nil {
		r.Close()
		return nil, err
	}
	go func() {
		io.Copy(p.out, r)
		r.Close()
		close(p.exited)
	}()
	return p, nil
}

// answers says whether the server answers HTTP.
func (p *process) answers() bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(p.url + "/moto-api/")
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (p *process) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// stop kills the server's process group and reaps it.
func (p *process) stop() {
	p.stopOnce.Do(func() {
		// The group is the one spawn made, led by the server, which is not
		// reaped yet: no other process can have its id.
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		p.cmd.Wait()
		close(p.release)
	})
}

// describe is the server's output from byte from on, for a failed test's
// log.
func (p *process) describe(from int) string {
	return fmt.Sprintf("output of %s on %s:\n%s", p.bin, p.url, p.out.since(from))
}

// freePort is a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port for moto_server: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// output is what a server has written, safe to read while it writes.
type output struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

func (o *output) len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Len()
}

func (o *output) since(from int) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return string(o.b.Bytes()[from:])
}
