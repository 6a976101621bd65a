// Package e2e runs real `berth serve` processes with the local provider and
// breaks them: it kills a cluster mid-job and kill -9s the server
// mid-workload, then checks that every job succeeded and that no step ran
// twice within one attempt.
package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/client"
	"github.com/berthhq/berth/internal/wait"
)

const deadline = 3 * time.Minute

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "berth-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "berth")
	build := exec.Command("go", "build", "-race", "-o", binary, "../cmd/berth")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build berth:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is one `berth serve` process.
type server struct {
	t    *testing.T
	cmd  *exec.Cmd
	done chan error
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startServer runs berth serve in dir with the given config and waits
// until it is ready.
func startServer(t *testing.T, dir, config string, c *client.Client) *server {
	t.Helper()
	cmd := exec.Command(binary, "serve", "--config", config)
	cmd.Dir = dir
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, cmd: cmd, done: make(chan error, 1)}
	var logs sync.WaitGroup
	logs.Add(1)
	go func() {
		defer logs.Done()
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			t.Logf("server %d: %s", cmd.Process.Pid, sc.Text())
		}
	}()
	go func() {
		logs.Wait()
		s.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-s.done
		}
	})
	waitFor(t, "server ready", func() bool { return c.Readyz(context.Background()) == nil })
	return s
}

// crash kills the server with SIGKILL: no clean-up runs.
func (s *server) crash() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		s.t.Fatal(err)
	}
	<-s.done
}

// stop sends SIGTERM and expects a clean exit.
func (s *server) stop() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		s.t.Fatal(err)
	}
	select {
	case err := <-s.done:
		if err != nil {
			s.t.Fatalf("server exit after SIGTERM: %v", err)
		}
	case <-time.After(deadline):
		s.t.Fatal("server did not stop after SIGTERM")
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	wait.For(t, deadline, what, cond)
}

const configYAML = `
listen: %s
store: sqlite://berth.db
log_level: debug
pools:
  - name: work
    provider: local
    slots: 2
    max_clusters: 3
    idle_timeout: 2s
    price_per_hour: 1.5
    local:
      boot_time: 300ms
      dir: clusters
`

func TestCrashesLoseNoJobAndStartNoStepTwice(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := filepath.Join(dir, "berth.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, configYAML, addr), 0o644); err != nil {
		t.Fatal(err)
	}
	markers := filepath.Join(dir, "markers")
	if err := os.Mkdir(markers, 0o755); err != nil {
		t.Fatal(err)
	}
	c := client.New("http://"+addr, "", nil)
	ctx := context.Background()
	srv := startServer(t, dir, cfg, c)

	// Each step appends its provider name — job, attempt and step — to a
	// marker file when it starts, then works for a moment.
	step := func(i, s int) berth.Step {
		script := fmt.Sprintf(`echo "$BERTH_STEP_NAME" >> %s/job-%d; sleep 0.%d`, markers, i, 3+(i+s)%5)
		return berth.Step{Name: fmt.Sprintf("s%d", s), Args: []string{"sh", "-c", script}}
	}
	const jobs = 24
	ids := make([]string, jobs)
	spec := func(i int) berth.JobSpec {
		return berth.JobSpec{
			Pool: "work", Name: fmt.Sprintf("job-%d", i),
			Steps:          []berth.Step{step(i, 0), step(i, 1)},
			IdempotencyKey: fmt.Sprintf("e2e/%d", i),
		}
	}
	for i := range jobs {
		j, created, err := c.Submit(ctx, spec(i))
		if err != nil || !created {
			t.Fatalf("submit %d: created=%v err=%v", i, created, err)
		}
		ids[i] = j.ID
	}

	// Kill a cluster under a running job.
	var victim string
	waitFor(t, "a running job", func() bool {
		js, _, err := c.Jobs(ctx, client.JobsQuery{State: berth.JobRunning})
		for _, j := range js {
			if a := j.CurrentAttempt(); a != nil && a.Steps[len(a.Steps)-1].State == berth.StepRunning {
				victim = j.ClusterID
			}
		}
		return err == nil && victim != ""
	})
	if k, err := c.Kill(ctx, victim); err != nil || k.State != berth.ClusterLost {
		t.Fatalf("kill cluster %s: %+v %v", victim, k, err)
	}

	// Crash the server twice while work runs, restarting it each time.
	for crash := range 2 {
		waitFor(t, "some progress before the crash", func() bool {
			n := succeeded(t, c, ids)
			return n >= (crash+1)*jobs/4
		})
		srv.crash()
		// Resubmitting after a crash, as a retried Airflow task would,
		// reattaches to the same job.
		srv = startServer(t, dir, cfg, c)
		j, created, err := c.Submit(ctx, spec(0))
		if err != nil || created || j.ID != ids[0] {
			t.Fatalf("resubmit after crash: id=%s created=%v err=%v", j.ID, created, err)
		}
	}

	waitFor(t, "every job to end", func() bool { return ended(t, c, ids) == jobs })

	lost := 0
	for i, id := range ids {
		j, err := c.Job(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if j.State != berth.JobSucceeded {
			t.Errorf("job %d ended %s (%s)", i, j.State, j.Reason)
		}
		for _, a := range j.Attempts {
			if a.Reason == berth.ReasonClusterLost {
				lost++
			}
			if a.Reason != berth.ReasonClusterLost && a.Reason != berth.ReasonSucceeded {
				t.Errorf("job %d attempt %d ended %s", i, a.N, a.Reason)
			}
		}
		checkMarkers(t, filepath.Join(markers, fmt.Sprintf("job-%d", i)), j)
	}
	if lost == 0 {
		t.Errorf("no attempt was recorded as cluster_lost after a cluster was killed under a running job")
	}

	// Leave nothing running: terminate every cluster, then stop cleanly.
	tctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	if err := c.TerminateAll(tctx, 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	srv.stop()
}

// checkMarkers asserts that no step started twice in one attempt and that
// the succeeded attempt ran each of its steps exactly once.
func checkMarkers(t *testing.T, path string, j berth.Job) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("job %s: %v", j.Name, err)
		return
	}
	seen := map[string]int{}
	for _, line := range strings.Fields(string(data)) {
		seen[line]++
		if seen[line] > 1 {
			t.Errorf("job %s: step %s started %d times", j.Name, line, seen[line])
		}
	}
	last := j.Attempts[len(j.Attempts)-1]
	for s := last.FirstStep; s < len(j.Steps); s++ {
		if name := berth.StepName(j.ID, last.N, s); seen[name] != 1 {
			t.Errorf("job %s: final attempt's step %s started %d times, want 1", j.Name, name, seen[name])
		}
	}
}

// succeeded counts the jobs that succeeded; errors while a server restarts
// count as none.
func succeeded(t *testing.T, c *client.Client, ids []string) int {
	return count(c, ids, func(s berth.JobState) bool { return s == berth.JobSucceeded })
}

func ended(t *testing.T, c *client.Client, ids []string) int {
	return count(c, ids, berth.JobState.Terminal)
}

func count(c *client.Client, ids []string, ok func(berth.JobState) bool) int {
	n := 0
	for _, id := range ids {
		j, err := c.Job(context.Background(), id)
		if err == nil && ok(j.State) {
			n++
		}
	}
	return n
}
