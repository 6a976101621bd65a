package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// server is one `berth serve` process the suite started, with its store and
// its configuration in a directory of its own.
type server struct {
	name   string
	dir    string
	config string
	pids   string // where the suite lists the servers it runs, for bench/run's trap
	bin    string
	cmd    *exec.Cmd
	exited chan struct{}
	api    *api
}

// pool is one pool of a generated configuration.
type pool struct {
	name     string
	provider string // "sim" or "local"
	slots    int
	clusters int // min_clusters and max_clusters
	bootTime string
	poll     string // the provider's poll_interval; "" for its default
}

// yaml is the pool as the configuration file has it. Sim steps other than
// sleep end after step_time 0, that is at once; an hour of idle_timeout
// keeps the fleet as it is for the whole measurement.
func (p pool) yaml() string {
	var b strings.Builder
	fmt.Fprintf(&b, "  - name: %s\n    provider: %s\n    slots: %d\n    min_clusters: %d\n    max_clusters: %d\n    idle_timeout: 1h\n",
		p.name, p.provider, p.slots, p.clusters, p.clusters)
	switch p.provider {
	case "sim":
		fmt.Fprintf(&b, "    sim: {boot_time: %s, step_time: 0s", p.bootTime)
		if p.poll != "" {
			fmt.Fprintf(&b, ", poll_interval: %s", p.poll)
		}
		b.WriteString("}\n")
	case "local":
		// A relative dir is the server's working directory, its own.
		fmt.Fprintf(&b, "    local: {boot_time: %s, dir: local", p.bootTime)
		if p.poll != "" {
			fmt.Fprintf(&b, ", poll_interval: %s", p.poll)
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// newServer writes the configuration of a server of these pools into a new
// directory under root. Nothing is started yet.
func newServer(root, bin, pids, name string, pools ...pool) (*server, error) {
	dir, err := os.MkdirTemp(root, name+"-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	var b strings.Builder
	// warn: the info line per step and cluster would cost the measurement.
	// The profiler costs nothing until asked, and lets a run be profiled
	// live at /debug/pprof/.
	fmt.Fprintf(&b, "listen: %s\nstore: sqlite://berth.db\nlog_level: warn\npprof: true\npools:\n", addr)
	for _, p := range pools {
		b.WriteString(p.yaml())
	}
	s := &server{name: name, dir: dir, config: filepath.Join(dir, "berth.yaml"), pids: pids, bin: bin,
		api: newAPI("http://" + addr)}
	return s, os.WriteFile(s.config, []byte(b.String()), 0o644)
}

// freePort asks the kernel for a port free on loopback. Another process
// could take it before berth serve binds it; start then fails and says so.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// start runs berth serve and returns once /readyz answers 200, with the time
// that took from the process's start.
func (s *server) start(ctx context.Context) (time.Duration, error) {
	logf, err := os.OpenFile(filepath.Join(s.dir, "serve.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	cmd := exec.Command(s.bin, "serve", "--config", s.config)
	cmd.Dir, cmd.Stdout, cmd.Stderr = s.dir, logf, logf
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s server: %w", s.name, err)
	}
	s.cmd, s.exited = cmd, make(chan struct{})
	pidFile := filepath.Join(s.pids, strconv.Itoa(cmd.Process.Pid))
	_ = os.WriteFile(pidFile, nil, 0o644)
	go func() {
		_ = cmd.Wait()
		// Gone from the list before the pid can be reused.
		_ = os.Remove(pidFile)
		close(s.exited)
	}()
	for {
		if s.api.ready(ctx) {
			return time.Since(t0), nil
		}
		select {
		case <-s.exited:
			return 0, fmt.Errorf("%s server exited before it was ready: %s", s.name, s.logTail())
		case <-ctx.Done():
			s.kill()
			return 0, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
		if time.Since(t0) > 5*time.Minute {
			s.kill()
			return 0, fmt.Errorf("%s server not ready after 5 minutes: %s", s.name, s.logTail())
		}
	}
}

// stop sends SIGTERM and waits for the process to exit, killing it after a
// minute. It returns how long the exit took.
func (s *server) stop() (time.Duration, error) {
	if s.cmd == nil {
		return 0, nil
	}
	select {
	case <-s.exited:
		return 0, fmt.Errorf("%s server had already exited: %s", s.name, s.logTail())
	default:
	}
	// A connection our client dialled and never used holds the server's
	// shutdown for up to its 5s grace (net/http counts it as active until
	// then); the suite's own leftovers are not what is being measured.
	s.api.hc.CloseIdleConnections()
	t0 := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return 0, err
	}
	select {
	case <-s.exited:
		return time.Since(t0), nil
	case <-time.After(time.Minute):
		s.kill()
		return 0, errors.New(s.name + " server still running a minute after SIGTERM; killed")
	}
}

// kill ends the process at once (it is ours: we started it).
func (s *server) kill() {
	if s.cmd == nil {
		return
	}
	select {
	case <-s.exited:
	default:
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// close stops the server and removes its directory: a million jobs' store
// is not worth keeping on disk once measured.
// close stops the server; its directory goes with the suite's work.
func (s *server) close() {
	if _, err := s.stop(); err != nil {
		s.kill()
	}
}

// pid is the running server's process id.
func (s *server) pid() int { return s.cmd.Process.Pid }

// memory reads the server's resident set size now and at its peak.
func (s *server) memory() (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.pid()))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %q: %w", k, v, err)
		}
		if k == "VmRSS" {
			rss = kb << 10
		} else {
			hwm = kb << 10
		}
	}
	return rss, hwm, nil
}

// logTail is the end of the server's log, for an error message.
func (s *server) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "serve.log"))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}
