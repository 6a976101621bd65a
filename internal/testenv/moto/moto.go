package moto

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/berthhq/berth/internal/testenv"
)

// The environment variables that say where moto_server is and whether
// its absence fails the tests (CI sets both) instead of skipping them.
const (
	EnvServer  = "BERTH_MOTO_SERVER"
	EnvRequire = "BERTH_REQUIRE_MOTO"
)

// accountHeader is how a request names the account moto serves it from;
// moto keeps every account's resources apart.
const accountHeader = "x-moto-account-id"

// firstAccount is the account of the first Shared handle; each later one
// gets the next. It is not moto's default account (123456789012), which a
// server from Start uses.
const firstAccount = 100_000_000_001

// resetTimeout bounds a Reset, so that a server that hangs fails the test
// instead of stalling it.
const resetTimeout = 30 * time.Second

// Server is a running moto_server, or one account of the shared one.
type Server struct {
	proc *process
	// account is the moto account this handle's requests use; "" for a
	// server of its own, which uses moto's default.
	account string
}

// Start starts a moto_server of t's own on a free loopback port, waits
// until it answers, and stops it when t ends. Its output goes to t's log
// if t fails. It skips t when moto_server is not installed, or fails it
// if BERTH_REQUIRE_MOTO=1.
func Start(t testing.TB) *Server {
	t.Helper()
	p := launch(t, binary(t))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s", p.describe(0))
		}
		p.stop()
	})
	return &Server{proc: p}
}

// shared is the one moto_server the tests of a binary share through
// Shared, started by the first of them and stopped by Main.
var shared struct {
	mu     sync.Mutex
	inMain bool
	proc   *process
	// failed says why there is no shared server after a test tried to
	// start one, so that later tests fail at once instead of waiting too.
	failed string
	next   int64
}

// Shared returns a handle on the moto_server that the tests of this test
// binary share, starting it for the first caller: it starts in a second
// or two, which every test would pay with Start. Each handle has a moto
// account of its own, fresh and seen by no other handle, so tests that
// share the server need no Reset and may run in parallel; S3 bucket names
// are still global, as on AWS. Failures log the server's output from
// when the handle was made (other tests' requests included).
//
// The package's TestMain must call Main, which stops the server after the
// tests.
func Shared(t testing.TB) *Server {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.inMain {
		t.Fatal("moto.Shared needs the package's TestMain to call moto.Main, which stops the shared moto_server after the tests")
	}
	if shared.proc == nil {
		if shared.failed != "" {
			t.Fatal(shared.failed)
		}
		bin := binary(t)
		shared.failed = "the shared moto_server failed to start for an earlier test (see its log)"
		shared.proc = launch(t, bin)
		shared.failed = ""
	}
	p := shared.proc
	if p.hasExited() {
		t.Fatalf("the shared moto_server has exited; %s", p.describe(0))
	}
	account := fmt.Sprintf("%012d", firstAccount+shared.next)
	shared.next++
	from := p.out.len()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s", p.describe(from))
		}
	})
	return &Server{proc: p, account: account}
}

// Main runs the tests of a package that uses Shared and then stops the
// shared moto_server:
//
//	func TestMain(m *testing.M) { moto.Main(m) }
func Main(m *testing.M) {
	shared.mu.Lock()
	shared.inMain = true
	shared.mu.Unlock()
	// testing exits with m.Run's code when TestMain returns.
	m.Run()
	shared.mu.Lock()
	p := shared.proc
	shared.proc = nil
	shared.mu.Unlock()
	if p != nil {
		p.stop()
	}
}

// URL is the server's base URL, http://127.0.0.1:PORT.
func (s *Server) URL() string { return s.proc.url }

// Reset clears all of moto's state. Only a server from Start can be
// reset: the shared one holds other tests' accounts, and each Shared
// handle's account is fresh already.
func (s *Server) Reset(t testing.TB) {
	t.Helper()
	if s.account != "" {
		t.Fatal("Reset of the shared moto_server would clear other tests' state; a Shared handle's account is fresh already, and Start gives a server of the test's own")
	}
	c := http.Client{Timeout: resetTimeout}
	resp, err := c.Post(s.URL()+"/moto-api/reset", "application/json", nil)
	if err != nil {
		t.Fatalf("resetting moto: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("resetting moto: %s", resp.Status)
	}
}

// AWSConfig is an aws-sdk-go-v2 configuration that sends every service's
// calls to this server, in region, with static test credentials and no
// retries, so that tests see moto's own answer to each call (and its 500s
// cost no backoff). S3 clients need UsePathStyle: moto answers on one
// host, not one per bucket.
func (s *Server) AWSConfig(region string) aws.Config {
	cfg := aws.Config{
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider("testing", "testing", ""),
		BaseEndpoint: aws.String(s.URL()),
		Retryer:      func() aws.Retryer { return aws.NopRetryer{} },
	}
	if s.account != "" {
		cfg.APIOptions = append(cfg.APIOptions, smithyhttp.AddHeaderValue(accountHeader, s.account))
	}
	return cfg
}

// server is the moto_server the tests run: BERTH_MOTO_SERVER, else .venv's
// at the module root (where .ci/run installs it), else the one on PATH.
var server = testenv.Tool{
	Name:    "moto_server",
	Env:     EnvServer,
	Require: EnvRequire,
	Venv:    ".venv/bin/moto_server",
	Install: "run .ci/run, which installs it into .venv at the repository root",
}

// binary is the moto_server to run; it skips or fails t without one.
func binary(t testing.TB) string {
	t.Helper()
	return server.Path(t)
}
