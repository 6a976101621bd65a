package emulator

import (
	"cmp"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/berthhq/berth/internal/clock"
)

// The defaults of Options: small, so that tests on the wall clock are fast.
const (
	DefaultBootTime      = 100 * time.Millisecond
	DefaultBootstrapTime = 50 * time.Millisecond
	DefaultTerminateTime = 50 * time.Millisecond
	DefaultJarStepTime   = 50 * time.Millisecond
	DefaultLogDelay      = 50 * time.Millisecond
	DefaultLossLag       = 100 * time.Millisecond
	DefaultMaxOutput     = 4 << 20
	DefaultRegion        = "us-east-1"
	DefaultAccount       = "123456789012"
)

// maxBody bounds a request body; EMR's largest requests (RunJobFlow with
// many configurations) are far smaller.
const maxBody = 16 << 20

// Options configures an Emulator. Durations of 0 take their default; a
// negative duration is none at all (the change happens at once, on the
// next timer of the clock).
type Options struct {
	// Clock drives every state change; nil is the wall clock.
	Clock clock.Clock
	// Region and Account name the clusters' ARNs and availability zone.
	Region, Account string

	// BootTime is how long a cluster stays STARTING, BootstrapTime
	// BOOTSTRAPPING and TerminateTime TERMINATING.
	BootTime, BootstrapTime, TerminateTime time.Duration
	// JarStepTime is how long a step of a jar other than
	// command-runner.jar runs (it runs nothing) before it completes.
	JarStepTime time.Duration
	// LogDelay is how long after a step ends its stdout and stderr reach
	// the cluster's LogUri, as EMR's log pusher is late too.
	LogDelay time.Duration
	// LossLag is how long after a node is lost (SpotLoss,
	// InstanceFailure) the cluster's state says so; its running steps
	// fail at once.
	LossLag time.Duration
	// IdleScale multiplies the IdleTimeout of clusters' auto-termination
	// policies (0 is 1), so that a test can see a 60-second policy act in
	// 60 ms with 0.001. Validation still applies to the seconds sent.
	IdleScale float64

	// Throttle turns on EMR's token buckets (see the package comment).
	Throttle bool
	// ThrottleScale multiplies the buckets' refill rates (0 is 1; bursts
	// stay 10), so that a run whose every duration is divided by a factor
	// can divide EMR's pace by it too and still meet EMR's limits as a
	// real run would.
	ThrottleScale float64

	// WorkDir is where each cluster's temporary directory, the working
	// directory of its step processes, is made; "" is os.TempDir().
	WorkDir string
	// MaxOutput bounds the stdout and the stderr kept of each step; the
	// rest is dropped.
	MaxOutput int

	// Log receives what the emulator does; nil discards it.
	Log *slog.Logger
	// Seed makes the ids the emulator hands out repeatable; 0 is random.
	Seed uint64
}

// duration is d, its default when 0, or none when negative.
func duration(d, def time.Duration) time.Duration {
	switch {
	case d == 0:
		return def
	case d < 0:
		return 0
	}
	return d
}

func (o Options) withDefaults() Options {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	o.Region = cmp.Or(o.Region, DefaultRegion)
	o.Account = cmp.Or(o.Account, DefaultAccount)
	o.BootTime = duration(o.BootTime, DefaultBootTime)
	o.BootstrapTime = duration(o.BootstrapTime, DefaultBootstrapTime)
	o.TerminateTime = duration(o.TerminateTime, DefaultTerminateTime)
	o.JarStepTime = duration(o.JarStepTime, DefaultJarStepTime)
	o.LogDelay = duration(o.LogDelay, DefaultLogDelay)
	o.LossLag = duration(o.LossLag, DefaultLossLag)
	if o.IdleScale <= 0 {
		o.IdleScale = 1
	}
	if o.ThrottleScale <= 0 {
		o.ThrottleScale = 1
	}
	o.WorkDir = cmp.Or(o.WorkDir, os.TempDir())
	if o.MaxOutput <= 0 {
		o.MaxOutput = DefaultMaxOutput
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return o
}

// Emulator is an in-memory AWS EMR and the S3 its step logs go to, served
// over HTTP by ServeHTTP. It is safe for concurrent use; Close ends it.
type Emulator struct {
	opts Options
	clk  clock.Clock
	log  *slog.Logger

	// mu guards everything below; timers' and processes' callbacks take
	// it too.
	mu       sync.Mutex
	closed   bool
	rnd      *mrand.Rand
	ids      map[string]bool
	seq      int
	clusters map[string]*cluster
	order    []*cluster // in order of creation
	procs    map[*step]*process

	calls     map[string]int
	requests  map[string][][]byte
	throttled int
	throttle  bool
	buckets   map[string]*bucket
	account   *bucket

	failBootstraps int
	failCapacity   int
	failCalls      map[string][]callFault
	dropReplies    map[string]int
	latency        map[string]time.Duration

	// procWG counts the goroutines waiting for step processes, so that
	// Close returns only once every process is reaped.
	procWG sync.WaitGroup
	// done is closed by Close, ending answers held back by latency.
	done chan struct{}

	s3 objectStore
}

// New returns an emulator with no clusters.
func New(opts Options) *Emulator {
	opts = opts.withDefaults()
	seed := opts.Seed
	if seed == 0 {
		var b [8]byte
		_, _ = rand.Read(b[:])
		seed = binary.LittleEndian.Uint64(b[:])
	}
	e := &Emulator{
		opts:        opts,
		clk:         opts.Clock,
		log:         opts.Log,
		rnd:         mrand.New(mrand.NewPCG(seed, seed>>1|1)),
		ids:         map[string]bool{},
		clusters:    map[string]*cluster{},
		procs:       map[*step]*process{},
		calls:       map[string]int{},
		requests:    map[string][][]byte{},
		throttle:    opts.Throttle,
		buckets:     map[string]*bucket{},
		failCalls:   map[string][]callFault{},
		dropReplies: map[string]int{},
		latency:     map[string]time.Duration{},
		done:        make(chan struct{}),
		s3:          objectStore{objects: map[string]object{}},
	}
	e.account = newBucket(e.scaled(accountRate), e.clk.Now())
	return e
}

// Close stops every timer, kills every step process (SIGKILL to its
// process group) and waits for them, and removes the clusters' temporary
// directories. Requests after Close are answered 503.
func (e *Emulator) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	close(e.done)
	var dirs []string
	for _, c := range e.order {
		c.stopTimers()
		for _, s := range c.steps {
			if s.timer != nil {
				s.timer.Stop()
			}
		}
		if c.dir != "" {
			dirs = append(dirs, c.dir)
		}
	}
	for _, p := range e.procs {
		p.signal(sigKill)
	}
	e.mu.Unlock()
	e.procWG.Wait()
	var errs []error
	for _, d := range dirs {
		errs = append(errs, os.RemoveAll(d))
	}
	return errors.Join(errs...)
}

// ServeHTTP answers EMR's API (POST with X-Amz-Target:
// ElasticMapReduce.<Operation>), the control endpoints under /emulator/
// and, for everything else, S3's path-style object requests.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasPrefix(r.URL.Path, "/emulator/"):
		e.serveControl(w, r)
	case r.Method == http.MethodPost && r.Header.Get("X-Amz-Target") != "":
		e.serveEMR(w, r)
	default:
		e.serveS3(w, r)
	}
}

// newID returns an id of prefix and n characters from alphabet, unused
// so far.
func (e *Emulator) newID(prefix string, n int, alphabet string) string {
	for {
		b := make([]byte, n)
		for i := range b {
			b[i] = alphabet[e.rnd.IntN(len(alphabet))]
		}
		id := prefix + string(b)
		if !e.ids[id] {
			e.ids[id] = true
			return id
		}
	}
}

const (
	upperAlnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	hexDigits  = "0123456789abcdef"
)

// Calls is the number of requests of each operation so far, throttled
// and failed ones included.
func (e *Emulator) Calls() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return maps.Clone(e.calls)
}

// Throttled is the number of requests answered ThrottlingException by
// the token buckets.
func (e *Emulator) Throttled() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.throttled
}

// Requests returns the bodies of the requests of operation op so far, in
// the order they came, each the JSON as sent.
func (e *Emulator) Requests(op string) [][]byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([][]byte, len(e.requests[op]))
	copy(out, e.requests[op])
	return out
}

// writeJSON answers v with status in awsJson1.1's content type.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"__type":"InternalFailure","Message":"the emulator could not encode its answer"}`)
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// readBody reads at most maxBody bytes of r's body.
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxBody {
		return nil, errors.New("request body too large")
	}
	return b, nil
}
