package cli

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/emr"
	"github.com/aws/aws-sdk-go-v2/service/emr/types"

	"github.com/berthhq/berth/internal/clock"
	"github.com/berthhq/berth/internal/emulator"
	"github.com/berthhq/berth/internal/wait"
)

// berth emulator serves EMR on the address it prints until interrupted;
// the SDK's emr client starts a cluster that runs a step there, and the
// stats endpoint counts the calls.
func TestEmulator(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	e := &env{stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }, clock: clock.Real{}}
	exited := make(chan int, 1)
	go func() {
		exited <- e.main(ctx, []string{"emulator", "--listen", "127.0.0.1:0", "--boot-time", "0", "--bootstrap-time", "0", "--log-delay", "0"})
	}()
	url := regexp.MustCompile(`http://127\.0\.0\.1:\d+`)
	wait.For(t, 10*time.Second, "the emulator's URL on stdout", func() bool { return url.MatchString(stdout.String()) })
	base := url.FindString(stdout.String())

	client := emr.NewFromConfig(aws.Config{
		Region: "us-east-1",
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "secret"}, nil
		}),
		BaseEndpoint: aws.String(base),
	}, func(o *emr.Options) { o.Retryer = aws.NopRetryer{} })
	out, err := client.RunJobFlow(ctx, &emr.RunJobFlowInput{
		Name: aws.String("cli"),
		Instances: &types.JobFlowInstancesConfig{
			KeepJobFlowAliveWhenNoSteps: aws.Bool(true),
			InstanceGroups:              []types.InstanceGroupConfig{{InstanceRole: types.InstanceRoleTypeMaster, InstanceType: aws.String("m5.xlarge"), InstanceCount: aws.Int32(1)}},
		},
		Steps: []types.StepConfig{{Name: aws.String("echo"), ActionOnFailure: types.ActionOnFailureContinue,
			HadoopJarStep: &types.HadoopJarStepConfig{Jar: aws.String("command-runner.jar"), Args: []string{"echo", "hello"}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, "the step to complete", func() bool {
		steps, err := client.ListSteps(ctx, &emr.ListStepsInput{ClusterId: out.JobFlowId})
		return err == nil && len(steps.Steps) == 1 && steps.Steps[0].Status.State == types.StepStateCompleted
	})

	resp, err := http.Get(base + "/emulator/stats")
	if err != nil {
		t.Fatal(err)
	}
	var stats emulator.Stats
	err = json.NewDecoder(resp.Body).Decode(&stats)
	resp.Body.Close()
	if err != nil || stats.Calls["RunJobFlow"] != 1 || len(stats.Clusters) != 1 || stats.Clusters[0].Steps[0].Stdout != "hello\n" {
		t.Errorf("stats: %+v (%v)", stats, err)
	}

	cancel()
	select {
	case code := <-exited:
		if code != 0 {
			t.Errorf("berth emulator exited %d after the interrupt, want 0\nstderr: %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("berth emulator did not stop when interrupted")
	}
	if _, err := http.Get(base + "/emulator/stats"); err == nil {
		t.Errorf("the emulator still answers after it stopped")
	}
}

func TestEmulatorUsage(t *testing.T) {
	tests := []struct {
		args []string
		msg  string
	}{
		{[]string{"emulator", "--listen", "0.0.0.0:4599"}, "want a loopback address"},
		{[]string{"emulator", "--listen", "4599"}, "--listen 4599"},
		{[]string{"emulator", "--boot-time", "-1s"}, "cannot be negative"},
		{[]string{"emulator", "--idle-scale", "0"}, "must be above 0"},
		{[]string{"emulator", "extra"}, "no arguments expected"},
	}
	for _, tt := range tests {
		var stdout, stderr syncBuffer
		e := &env{stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }, clock: clock.Real{}}
		if code := e.main(context.Background(), tt.args); code != 2 || !strings.Contains(stderr.String(), tt.msg) {
			t.Errorf("berth %s: exit %d, stderr %q; want 2 and %q", strings.Join(tt.args, " "), code, stderr.String(), tt.msg)
		}
	}
}
