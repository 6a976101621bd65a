package moto_test

// What moto does with the EMR calls Berth makes, through the real SDK
// client. Where moto differs from EMR the tests assert moto's behaviour and
// say EMR's, so that a moto upgrade that changes it fails here first; the
// package comment sums them up.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/emr"
	"github.com/aws/aws-sdk-go-v2/service/emr/types"
	"github.com/aws/smithy-go"

	"github.com/berthhq/berth/internal/testenv/moto"
)

// berthCluster is a RunJobFlow call of the shape provider/emr makes.
func berthCluster() *emr.RunJobFlowInput {
	return &emr.RunJobFlowInput{
		Name:                 aws.String("berth etl cl-1"),
		ReleaseLabel:         aws.String("emr-7.5.0"),
		ServiceRole:          aws.String("EMR_DefaultRole"),
		JobFlowRole:          aws.String("EMR_EC2_DefaultRole"),
		StepConcurrencyLevel: aws.Int32(4),
		VisibleToAllUsers:    aws.Bool(true),
		LogUri:               aws.String("s3://berth-logs/emr/"),
		Instances: &types.JobFlowInstancesConfig{
			KeepJobFlowAliveWhenNoSteps: aws.Bool(true),
			InstanceGroups: []types.InstanceGroupConfig{
				{InstanceRole: types.InstanceRoleTypeMaster, InstanceType: aws.String("m5.xlarge"), InstanceCount: aws.Int32(1), Market: types.MarketTypeOnDemand},
				{InstanceRole: types.InstanceRoleTypeCore, InstanceType: aws.String("m5.2xlarge"), InstanceCount: aws.Int32(2), Market: types.MarketTypeSpot, BidPrice: aws.String("0.25")},
			},
		},
		Applications: []types.Application{{Name: aws.String("Spark")}, {Name: aws.String("Hadoop")}},
		Tags: []types.Tag{
			{Key: aws.String("berth:cluster-id"), Value: aws.String("cl-1")},
			{Key: aws.String("berth:installation"), Value: aws.String("test")},
			{Key: aws.String("berth:pool"), Value: aws.String("etl")},
			{Key: aws.String("team"), Value: aws.String("data")},
		},
		AutoTerminationPolicy: &types.AutoTerminationPolicy{IdleTimeout: aws.Int64(2400)},
	}
}

// berthStep is an AddJobFlowSteps entry of the shape provider/emr makes.
func berthStep(name string) types.StepConfig {
	return types.StepConfig{
		Name:            aws.String(name),
		ActionOnFailure: types.ActionOnFailureContinue,
		HadoopJarStep:   &types.HadoopJarStepConfig{Jar: aws.String("command-runner.jar"), Args: []string{"spark-submit", name + ".py"}},
	}
}

func newEMR(t *testing.T) *emr.Client {
	t.Helper()
	return emr.NewFromConfig(moto.Shared(t).AWSConfig("us-east-1"))
}

// runCluster starts berthCluster, changed by edit if not nil.
func runCluster(t *testing.T, c *emr.Client, edit func(*emr.RunJobFlowInput)) string {
	t.Helper()
	in := berthCluster()
	if edit != nil {
		edit(in)
	}
	out, err := c.RunJobFlow(context.Background(), in)
	if err != nil {
		t.Fatalf("RunJobFlow: %v", err)
	}
	return aws.ToString(out.JobFlowId)
}

func addSteps(t *testing.T, c *emr.Client, id string, names ...string) []string {
	t.Helper()
	var steps []types.StepConfig
	for _, n := range names {
		steps = append(steps, berthStep(n))
	}
	out, err := c.AddJobFlowSteps(context.Background(), &emr.AddJobFlowStepsInput{JobFlowId: &id, Steps: steps})
	if err != nil {
		t.Fatalf("AddJobFlowSteps(%s): %v", id, err)
	}
	return out.StepIds
}

func describe(t *testing.T, c *emr.Client, id string) *types.Cluster {
	t.Helper()
	out, err := c.DescribeCluster(context.Background(), &emr.DescribeClusterInput{ClusterId: &id})
	if err != nil {
		t.Fatalf("DescribeCluster(%s): %v", id, err)
	}
	return out.Cluster
}

func terminate(t *testing.T, c *emr.Client, id string) {
	t.Helper()
	if _, err := c.TerminateJobFlows(context.Background(), &emr.TerminateJobFlowsInput{JobFlowIds: []string{id}}); err != nil {
		t.Fatalf("TerminateJobFlows(%s): %v", id, err)
	}
}

// listClusters is the ids of every page of ListClusters, sorted.
func listClusters(t *testing.T, c *emr.Client, states ...types.ClusterState) []string {
	t.Helper()
	var ids []string
	pages := emr.NewListClustersPaginator(c, &emr.ListClustersInput{ClusterStates: states})
	for pages.HasMorePages() {
		out, err := pages.NextPage(context.Background())
		if err != nil {
			t.Fatalf("ListClusters(%v): %v", states, err)
		}
		for _, cl := range out.Clusters {
			ids = append(ids, aws.ToString(cl.Id))
		}
	}
	slices.Sort(ids)
	return ids
}

// listSteps is "name STATE" of every step ListSteps returns, in its
// order, through every page, and the size of each page.
func listSteps(t *testing.T, c *emr.Client, id string, states ...types.StepState) (steps []string, pages []int) {
	t.Helper()
	in := &emr.ListStepsInput{ClusterId: &id, StepStates: states}
	for {
		out, err := c.ListSteps(context.Background(), in)
		if err != nil {
			t.Fatalf("ListSteps(%s, %v): %v", id, states, err)
		}
		for _, s := range out.Steps {
			steps = append(steps, aws.ToString(s.Name)+" "+string(s.Status.State))
		}
		pages = append(pages, len(out.Steps))
		if out.Marker == nil {
			return steps, pages
		}
		in.Marker = out.Marker
	}
}

// errorShape is what the SDK made of a failed call: the HTTP status, and
// the API error code, "" when the answer was no API error at all.
func errorShape(err error) (status int, code string) {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	return status, code
}

func TestRunJobFlowThenDescribeCluster(t *testing.T) {
	t.Parallel()
	c := newEMR(t)
	id := runCluster(t, c, nil)
	cl := describe(t, c, id)
	groups, err := c.ListInstanceGroups(context.Background(), &emr.ListInstanceGroupsInput{ClusterId: &id})
	if err != nil {
		t.Fatalf("ListInstanceGroups: %v", err)
	}
	group := map[types.InstanceGroupType]string{}
	for _, g := range groups.InstanceGroups {
		group[g.InstanceGroupType] = fmt.Sprintf("%s x%d %s %s running %d", aws.ToString(g.InstanceType),
			aws.ToInt32(g.RequestedInstanceCount), g.Market, aws.ToString(g.BidPrice), aws.ToInt32(g.RunningInstanceCount))
	}
	var apps, tags []string
	for _, a := range cl.Applications {
		apps = append(apps, aws.ToString(a.Name))
	}
	for _, tg := range cl.Tags {
		tags = append(tags, aws.ToString(tg.Key)+"="+aws.ToString(tg.Value))
	}
	slices.Sort(tags)
	for _, tt := range []struct{ field, got, want string }{
		{"Id", aws.ToString(cl.Id), id},
		{"Name", aws.ToString(cl.Name), "berth etl cl-1"},
		{"ReleaseLabel", aws.ToString(cl.ReleaseLabel), "emr-7.5.0"},
		{"ServiceRole", aws.ToString(cl.ServiceRole), "EMR_DefaultRole"},
		{"StepConcurrencyLevel", fmt.Sprint(aws.ToInt32(cl.StepConcurrencyLevel)), "4"},
		{"VisibleToAllUsers", fmt.Sprint(aws.ToBool(cl.VisibleToAllUsers)), "true"},
		{"LogUri", aws.ToString(cl.LogUri), "s3://berth-logs/emr/"},
		{"Applications", strings.Join(apps, ","), "Spark,Hadoop"},
		{"Tags", strings.Join(tags, ","), "berth:cluster-id=cl-1,berth:installation=test,berth:pool=etl,team=data"},
		// EMR is STARTING for minutes; moto is ready at once.
		{"Status.State", string(cl.Status.State), "WAITING"},
		{"ClusterArn", aws.ToString(cl.ClusterArn), "arn:aws:elasticmapreduce:us-east-1:" + account(cl) + ":cluster/" + id},
		// The instance groups, running in full at once.
		{"MASTER group", group[types.InstanceGroupTypeMaster], "m5.xlarge x1 ON_DEMAND  running 1"},
		{"CORE group", group[types.InstanceGroupTypeCore], "m5.2xlarge x2 SPOT 0.25 running 2"},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %q, want %q", tt.field, tt.got, tt.want)
		}
	}
}

// account is the account in cl's ARN.
func account(cl *types.Cluster) string {
	parts := strings.Split(aws.ToString(cl.ClusterArn), ":")
	if len(parts) < 5 {
		return ""
	}
	return parts[4]
}

func TestEMRServesEveryRegionFromUSEast1(t *testing.T) {
	t.Parallel()
	s := moto.Shared(t)
	eu := emr.NewFromConfig(s.AWSConfig("eu-west-1"))
	us := emr.NewFromConfig(s.AWSConfig("us-east-1"))
	id := runCluster(t, eu, nil)
	if arn := aws.ToString(describe(t, eu, id).ClusterArn); !strings.Contains(arn, ":us-east-1:") {
		t.Errorf("a cluster made in eu-west-1 has ARN %s, want one in us-east-1", arn)
	}
	if got := listClusters(t, us); !slices.Equal(got, []string{id}) {
		t.Errorf("ListClusters in us-east-1 = %v, want the eu-west-1 cluster %s", got, id)
	}
}

func TestListClustersByState(t *testing.T) {
	t.Parallel()
	c := newEMR(t)
	waiting := runCluster(t, c, nil)
	running := runCluster(t, c, nil)
	addSteps(t, c, running, "busy")
	terminated := runCluster(t, c, nil)
	terminate(t, c, terminated)
	// Not kept alive with no steps, EMR ends a cluster once it has booted;
	// moto at once.
	ended := runCluster(t, c, func(in *emr.RunJobFlowInput) { in.Instances.KeepJobFlowAliveWhenNoSteps = aws.Bool(false) })

	live := []types.ClusterState{types.ClusterStateStarting, types.ClusterStateBootstrapping, types.ClusterStateRunning, types.ClusterStateWaiting}
	tests := []struct {
		name   string
		states []types.ClusterState
		want   []string
	}{
		{"no filter", nil, []string{waiting, running, terminated, ended}},
		{"WAITING", []types.ClusterState{types.ClusterStateWaiting}, []string{waiting}},
		{"RUNNING", []types.ClusterState{types.ClusterStateRunning}, []string{running}},
		{"live", live, []string{waiting, running}},
		{"TERMINATED", []types.ClusterState{types.ClusterStateTerminated}, []string{terminated, ended}},
		{"TERMINATING, never seen", []types.ClusterState{types.ClusterStateTerminating}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := slices.Sorted(slices.Values(tt.want))
			if got := listClusters(t, c, tt.states...); !slices.Equal(got, want) {
				t.Errorf("ListClusters(%v) = %v, want %v", tt.states, got, want)
			}
		})
	}
}

func TestStepsListNewestFirstFiftyAPage(t *testing.T) {
	t.Parallel()
	c := newEMR(t)
	id := runCluster(t, c, nil) // StepConcurrencyLevel 4
	// One call per step, as Berth adds them: one per attempt.
	const n = 60
	var names []string
	for i := range n {
		names = append(names, fmt.Sprintf("step-%02d", i))
		addSteps(t, c, id, names[i])
	}
	if st := describe(t, c, id).Status.State; st != types.ClusterStateRunning {
		t.Errorf("cluster with steps is %s, want RUNNING", st)
	}

	// moto runs the first step and no other, whatever the concurrency, and
	// never ends one: EMR would run 4 and end each.
	var want []string
	for i := n - 1; i >= 0; i-- {
		state := "PENDING"
		if i == 0 {
			state = "RUNNING"
		}
		want = append(want, names[i]+" "+state)
	}
	tests := []struct {
		name      string
		states    []types.StepState
		want      []string
		wantPages []int
	}{
		{"all, newest first", nil, want, []int{50, 10}},
		{"RUNNING", []types.StepState{types.StepStateRunning}, want[n-1:], []int{1}},
		{"PENDING", []types.StepState{types.StepStatePending}, want[:n-1], []int{50, 9}},
		{"ended: none", []types.StepState{types.StepStateCompleted, types.StepStateFailed, types.StepStateCancelled}, nil, []int{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, pages := listSteps(t, c, id, tt.states...)
			if !slices.Equal(got, tt.want) {
				t.Errorf("ListSteps(%v) =\n%v\nwant\n%v", tt.states, got, tt.want)
			}
			if !slices.Equal(pages, tt.wantPages) {
				t.Errorf("ListSteps(%v) pages of %v, want %v", tt.states, pages, tt.wantPages)
			}
		})
	}

	out, err := c.ListSteps(context.Background(), &emr.ListStepsInput{ClusterId: &id})
	if err != nil {
		t.Fatal(err)
	}
	s := out.Steps[0]
	if got, want := fmt.Sprintf("%s %v %s", aws.ToString(s.Config.Jar), s.Config.Args, s.ActionOnFailure), "command-runner.jar [spark-submit step-59.py] CONTINUE"; got != want {
		t.Errorf("newest step's jar, args and action on failure: %s, want %s", got, want)
	}
}

func TestTerminateJobFlows(t *testing.T) {
	t.Parallel()
	c := newEMR(t)
	id := runCluster(t, c, nil)
	addSteps(t, c, id, "first", "second")
	terminate(t, c, id)

	// EMR goes through TERMINATING, gives the reason USER_REQUEST and
	// cancels the steps that had not ended; moto ends the cluster at once
	// with no reason and leaves its steps as they were.
	cl := describe(t, c, id)
	if got := fmt.Sprint(cl.Status.State, " reason ", cl.Status.StateChangeReason.Code); got != "TERMINATED reason " {
		t.Errorf("after TerminateJobFlows: %s, want TERMINATED with no reason", got)
	}
	if steps, _ := listSteps(t, c, id); !slices.Equal(steps, []string{"second PENDING", "first RUNNING"}) {
		t.Errorf("steps after TerminateJobFlows: %v, want them as they were", steps)
	}
	// Terminating again succeeds, as on EMR.
	terminate(t, c, id)
	// EMR refuses steps for a terminated cluster (ValidationException);
	// moto takes them and the cluster is RUNNING again.
	addSteps(t, c, id, "late")
	if st := describe(t, c, id).Status.State; st != types.ClusterStateRunning {
		t.Errorf("terminated cluster after AddJobFlowSteps: %s, want RUNNING (moto revives it)", st)
	}
}

func TestUnknownIDs(t *testing.T) {
	t.Parallel()
	c := newEMR(t)
	ctx := context.Background()
	unknown := aws.String("j-NOSUCHCLUSTER")
	tests := []struct {
		name       string
		call       func() error
		wantStatus int
		wantCode   string
	}{
		// As EMR (see below for the detail).
		{"DescribeCluster", func() error {
			_, err := c.DescribeCluster(ctx, &emr.DescribeClusterInput{ClusterId: unknown})
			return err
		}, 400, "InvalidRequestException"},
		// moto fails on the missing cluster with an HTML 500 where EMR answers
		// InvalidRequestException.
		{"ListSteps", func() error {
			_, err := c.ListSteps(ctx, &emr.ListStepsInput{ClusterId: unknown})
			return err
		}, 500, ""},
		{"AddJobFlowSteps", func() error {
			_, err := c.AddJobFlowSteps(ctx, &emr.AddJobFlowStepsInput{JobFlowId: unknown, Steps: []types.StepConfig{berthStep("x")}})
			return err
		}, 500, ""},
		{"TerminateJobFlows", func() error {
			_, err := c.TerminateJobFlows(ctx, &emr.TerminateJobFlowsInput{JobFlowIds: []string{*unknown}})
			return err
		}, 500, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if status, code := errorShape(err); err == nil || status != tt.wantStatus || code != tt.wantCode {
				t.Errorf("%s of an unknown cluster: status %d, code %q (%v); want %d, %q", tt.name, status, code, err, tt.wantStatus, tt.wantCode)
			}
		})
	}

	// DescribeCluster's InvalidRequestException says NoSuchCluster in its
	// own error code, as EMR's does.
	_, err := c.DescribeCluster(ctx, &emr.DescribeClusterInput{ClusterId: unknown})
	var ire *types.InvalidRequestException
	if !errors.As(err, &ire) || aws.ToString(ire.ErrorCode_) != "NoSuchCluster" {
		t.Errorf("DescribeCluster of an unknown cluster: %v; want an InvalidRequestException with ErrorCode_ NoSuchCluster", err)
	}

	// An unknown step of a known cluster is no error, and no step; EMR
	// answers InvalidRequestException.
	id := runCluster(t, c, nil)
	out, err := c.DescribeStep(ctx, &emr.DescribeStepInput{ClusterId: &id, StepId: aws.String("s-NOSUCHSTEP")})
	if err != nil || out.Step != nil {
		t.Errorf("DescribeStep of an unknown step: %+v, %v; want no step and no error", out, err)
	}
}

// countingClient counts the HTTP requests a client sends.
type countingClient struct {
	n    atomic.Int32
	next *awshttp.BuildableClient
}

func (c *countingClient) Do(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.Do(r)
}

func TestUnimplementedCallsAnswer500Once(t *testing.T) {
	t.Parallel()
	hc := &countingClient{next: awshttp.NewBuildableClient()}
	c := emr.NewFromConfig(moto.Shared(t).AWSConfig("us-east-1"), func(o *emr.Options) { o.HTTPClient = hc })
	ctx := context.Background()
	id := runCluster(t, c, nil)
	step := addSteps(t, c, id, "long")
	fleets := runCluster(t, c, func(in *emr.RunJobFlowInput) {
		in.Instances.InstanceGroups = nil
		in.Instances.InstanceFleets = []types.InstanceFleetConfig{{
			InstanceFleetType:      types.InstanceFleetTypeMaster,
			TargetOnDemandCapacity: aws.Int32(1),
			InstanceTypeConfigs:    []types.InstanceTypeConfig{{InstanceType: aws.String("m5.xlarge")}},
		}}
	})
	// moto takes fleets and keeps none: the collection type is empty where
	// EMR says INSTANCE_FLEET, and ListInstanceFleets fails below.
	if got := describe(t, c, fleets).InstanceCollectionType; got != "" {
		t.Errorf("InstanceCollectionType of a fleet cluster = %q, want empty", got)
	}

	tests := []struct {
		name string
		call func() error
	}{
		{"CancelSteps", func() error {
			_, err := c.CancelSteps(ctx, &emr.CancelStepsInput{ClusterId: &id, StepIds: step})
			return err
		}},
		// RunJobFlow takes an AutoTerminationPolicy, which moto drops; EMR's
		// DescribeCluster does not show it either.
		{"GetAutoTerminationPolicy", func() error {
			_, err := c.GetAutoTerminationPolicy(ctx, &emr.GetAutoTerminationPolicyInput{ClusterId: &id})
			return err
		}},
		{"ListInstanceFleets", func() error {
			_, err := c.ListInstanceFleets(ctx, &emr.ListInstanceFleetsInput{ClusterId: &fleets})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := hc.n.Load()
			err := tt.call()
			// An HTML page, not an API error: the SDK's error is a
			// ResponseError around a DeserializationError.
			var de *smithy.DeserializationError
			if status, code := errorShape(err); status != 500 || code != "" || !errors.As(err, &de) {
				t.Errorf("%s: status %d, code %q (%v); want 500, no API error, a DeserializationError", tt.name, status, code, err)
			}
			if sent := hc.n.Load() - before; sent != 1 {
				t.Errorf("%s sent %d requests, want 1 (no retries)", tt.name, sent)
			}
		})
	}
}
