package emulator_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/emr"
	"github.com/aws/aws-sdk-go-v2/service/emr/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/berthhq/berth/internal/clock"
	"github.com/berthhq/berth/internal/emulator"
	"github.com/berthhq/berth/internal/wait"
)

var t0 = time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)

// within bounds every wait for something outside the fake clock: a step
// process ending, a signal arriving.
const within = 10 * time.Second

// harness is an emulator behind a real HTTP server, driven by the real
// SDK clients, on a fake clock unless the options carry a clock.
type harness struct {
	emu  *emulator.Emulator
	url  string
	clk  *clock.Fake
	emr  *emr.Client
	s3   *s3.Client
	opts emulator.Options
}

func newHarness(t *testing.T, opts emulator.Options) *harness {
	t.Helper()
	h := &harness{}
	if opts.Clock == nil {
		h.clk = clock.NewFake(t0)
		opts.Clock = h.clk
	}
	opts.Log = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	h.opts = opts
	h.emu = emulator.New(opts)
	srv := httptest.NewServer(h.emu)
	t.Cleanup(func() {
		if err := h.emu.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		srv.Close()
	})
	h.url = srv.URL
	cfg := aws.Config{
		Region: "us-east-1",
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "secret"}, nil
		}),
		BaseEndpoint: aws.String(srv.URL),
		HTTPClient:   srv.Client(),
	}
	// Retries off, but for a closed connection: the tests count calls
	// and see every error.
	h.emr = emr.NewFromConfig(cfg, func(o *emr.Options) { o.Retryer = closedConnRetryer{} })
	h.s3 = s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true; o.Retryer = closedConnRetryer{} })
	return h
}

// closedConnRetryer retries only a call whose connection net/http closed
// under it as it read the answer, a race of its own that the SDK's
// default retryer retries too (aws-sdk-go-v2 issue 2737); any other error
// is the test's to see.
type closedConnRetryer struct{ aws.NopRetryer }

func (closedConnRetryer) IsErrorRetryable(err error) bool              { return errors.Is(err, net.ErrClosed) }
func (closedConnRetryer) MaxAttempts() int                             { return 3 }
func (closedConnRetryer) RetryDelay(int, error) (time.Duration, error) { return 0, nil }

// advance moves the fake clock on by each of ds in turn, so that a chain
// of state changes (STARTING, BOOTSTRAPPING, WAITING) takes one each.
func (h *harness) advance(ds ...time.Duration) {
	for _, d := range ds {
		h.clk.Advance(d)
	}
}

// input is a RunJobFlow request as Berth makes one: kept alive, instance
// groups, steps at once.
func input(name string, level int32) *emr.RunJobFlowInput {
	return &emr.RunJobFlowInput{
		Name:                 aws.String(name),
		ReleaseLabel:         aws.String("emr-7.5.0"),
		ServiceRole:          aws.String("EMR_DefaultRole"),
		JobFlowRole:          aws.String("EMR_EC2_DefaultRole"),
		StepConcurrencyLevel: aws.Int32(level),
		VisibleToAllUsers:    aws.Bool(true),
		Applications:         []types.Application{{Name: aws.String("Spark")}, {Name: aws.String("Hadoop")}},
		Tags:                 []types.Tag{{Key: aws.String("berth:cluster-id"), Value: aws.String("cl-0001")}},
		Instances: &types.JobFlowInstancesConfig{
			KeepJobFlowAliveWhenNoSteps: aws.Bool(true),
			InstanceGroups: []types.InstanceGroupConfig{
				{InstanceRole: types.InstanceRoleTypeMaster, InstanceType: aws.String("m5.xlarge"), InstanceCount: aws.Int32(1), Market: types.MarketTypeOnDemand},
				{InstanceRole: types.InstanceRoleTypeCore, InstanceType: aws.String("r5.2xlarge"), InstanceCount: aws.Int32(4), Market: types.MarketTypeSpot},
			},
		},
	}
}

// start creates a cluster of in and returns its id.
func (h *harness) start(t *testing.T, in *emr.RunJobFlowInput) string {
	t.Helper()
	out, err := h.emr.RunJobFlow(context.Background(), in)
	if err != nil {
		t.Fatalf("RunJobFlow: %v", err)
	}
	return aws.ToString(out.JobFlowId)
}

// ready creates a cluster of in and moves the clock until it is WAITING.
func (h *harness) ready(t *testing.T, in *emr.RunJobFlowInput) string {
	t.Helper()
	id := h.start(t, in)
	h.advance(emulator.DefaultBootTime, emulator.DefaultBootstrapTime)
	if st := h.cluster(t, id).Status.State; st != types.ClusterStateWaiting {
		t.Fatalf("cluster %s is %s after booting, want WAITING", id, st)
	}
	return id
}

func (h *harness) cluster(t *testing.T, id string) *types.Cluster {
	t.Helper()
	out, err := h.emr.DescribeCluster(context.Background(), &emr.DescribeClusterInput{ClusterId: aws.String(id)})
	if err != nil {
		t.Fatalf("DescribeCluster %s: %v", id, err)
	}
	return out.Cluster
}

func (h *harness) step(t *testing.T, id, sid string) *types.Step {
	t.Helper()
	out, err := h.emr.DescribeStep(context.Background(), &emr.DescribeStepInput{ClusterId: aws.String(id), StepId: aws.String(sid)})
	if err != nil {
		t.Fatalf("DescribeStep %s: %v", sid, err)
	}
	return out.Step
}

// add adds steps to cluster id and returns their ids.
func (h *harness) add(t *testing.T, id string, steps ...types.StepConfig) []string {
	t.Helper()
	out, err := h.emr.AddJobFlowSteps(context.Background(), &emr.AddJobFlowStepsInput{JobFlowId: aws.String(id), Steps: steps})
	if err != nil {
		t.Fatalf("AddJobFlowSteps: %v", err)
	}
	return out.StepIds
}

// snapStep is step sid of cluster id as the emulator holds it.
func (h *harness) snapStep(t *testing.T, id, sid string) emulator.Step {
	t.Helper()
	c, ok := h.emu.Cluster(id)
	if !ok {
		t.Fatalf("no cluster %s", id)
	}
	for _, s := range c.Steps {
		if s.ID == sid {
			return s
		}
	}
	t.Fatalf("no step %s in cluster %s", sid, id)
	return emulator.Step{}
}

// waitStep waits until step sid is in state.
func (h *harness) waitStep(t *testing.T, id, sid, state string) emulator.Step {
	t.Helper()
	wait.For(t, within, "step "+sid+" "+state, func() bool { return h.snapStep(t, id, sid).State == state })
	return h.snapStep(t, id, sid)
}

// command is a command-runner.jar step of args that continues on failure.
func command(name string, args ...string) types.StepConfig {
	return types.StepConfig{
		Name:            aws.String(name),
		ActionOnFailure: types.ActionOnFailureContinue,
		HadoopJarStep:   &types.HadoopJarStepConfig{Jar: aws.String("command-runner.jar"), Args: args},
	}
}

// jar is a step of a jar the emulator does not run.
func jar(name string) types.StepConfig {
	return types.StepConfig{
		Name:            aws.String(name),
		ActionOnFailure: types.ActionOnFailureContinue,
		HadoopJarStep:   &types.HadoopJarStepConfig{Jar: aws.String("s3://bucket/app.jar"), MainClass: aws.String("com.example.Main"), Args: []string{"--day", "1"}},
	}
}

// gate is a file a blocked step waits for; open lets it go on.
type gate string

func newGate(t *testing.T) gate { return gate(filepath.Join(t.TempDir(), "gate")) }

// step is a command that waits for the gate, then exits with status 0.
func (g gate) step(name string) types.StepConfig {
	return command(name, "sh", "-c", "while [ ! -e '"+string(g)+"' ]; do sleep 0.01; done")
}

func (g gate) open(t *testing.T) {
	t.Helper()
	if err := os.WriteFile(string(g), nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// gone reports whether no process of group pgid is left alive. A killed
// process whose parent died before it is a zombie until init reaps it,
// which can take a while: that one counts as gone.
func gone(pgid int) bool {
	if errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH) {
		return true
	}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // it ended as we looked
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) >= 3 && f[2] == strconv.Itoa(pgid) && f[0] != "Z" && f[0] != "X" {
			return false
		}
	}
	return true
}

// apiError returns err's EMR error code and message and the HTTP status,
// failing the test if err is not an API error.
func apiError(t *testing.T, err error) (code, msg string, status int) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("error %v (%T) is not an API error", err, err)
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	return ae.ErrorCode(), ae.ErrorMessage(), status
}

func wantAPIError(t *testing.T, err error, code, msgPart string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %s", code)
	}
	c, m, _ := apiError(t, err)
	if c != code || !strings.Contains(m, msgPart) {
		t.Fatalf("error %s %q, want %s with %q", c, m, code, msgPart)
	}
}
