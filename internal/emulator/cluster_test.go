package emulator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/emr"
	"github.com/aws/aws-sdk-go-v2/service/emr/types"

	"github.com/berthhq/berth/internal/emulator"
)

var (
	clusterID = regexp.MustCompile(`^j-[A-Z0-9]{13}$`)
	stepID    = regexp.MustCompile(`^s-[A-Z0-9]{13}$`)
)

// A cluster goes STARTING, BOOTSTRAPPING, WAITING on the clock, answers
// what it was made of, and on TerminateJobFlows TERMINATING then
// TERMINATED with USER_REQUEST.
func TestClusterLifecycle(t *testing.T) {
	h := newHarness(t, emulator.Options{})
	in := input("berth small cl-0001", 2)
	in.LogUri = aws.String("s3://logs/emr/")
	in.AutoTerminationPolicy = &types.AutoTerminationPolicy{IdleTimeout: aws.Int64(3600)}
	out, err := h.emr.RunJobFlow(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.JobFlowId)
	if !clusterID.MatchString(id) {
		t.Errorf("cluster id %q is not like EMR's", id)
	}
	if want := "arn:aws:elasticmapreduce:us-east-1:123456789012:cluster/" + id; aws.ToString(out.ClusterArn) != want {
		t.Errorf("ClusterArn %q, want %q", aws.ToString(out.ClusterArn), want)
	}

	c := h.cluster(t, id)
	if c.Status.State != types.ClusterStateStarting || !c.Status.Timeline.CreationDateTime.Equal(t0) {
		t.Fatalf("new cluster: %s created %v, want STARTING at %v", c.Status.State, c.Status.Timeline.CreationDateTime, t0)
	}
	if aws.ToString(c.Name) != "berth small cl-0001" || aws.ToInt32(c.StepConcurrencyLevel) != 2 ||
		aws.ToString(c.ReleaseLabel) != "emr-7.5.0" || aws.ToString(c.LogUri) != "s3://logs/emr/" ||
		c.InstanceCollectionType != types.InstanceCollectionTypeInstanceGroup || aws.ToBool(c.AutoTerminate) ||
		aws.ToString(c.ServiceRole) != "EMR_DefaultRole" || len(c.Applications) != 2 || aws.ToString(c.Applications[0].Name) != "Spark" {
		t.Errorf("DescribeCluster does not answer what was sent: %+v", c)
	}
	if len(c.Tags) != 1 || aws.ToString(c.Tags[0].Key) != "berth:cluster-id" || aws.ToString(c.Tags[0].Value) != "cl-0001" {
		t.Errorf("tags %+v", c.Tags)
	}

	h.advance(emulator.DefaultBootTime)
	if st := h.cluster(t, id).Status.State; st != types.ClusterStateBootstrapping {
		t.Fatalf("after the boot time: %s, want BOOTSTRAPPING", st)
	}
	groups, err := h.emr.ListInstanceGroups(context.Background(), &emr.ListInstanceGroupsInput{ClusterId: aws.String(id)})
	if err != nil {
		t.Fatal(err)
	}
	if len(groups.InstanceGroups) != 2 || aws.ToInt32(groups.InstanceGroups[1].RunningInstanceCount) != 4 ||
		groups.InstanceGroups[1].Market != types.MarketTypeSpot || groups.InstanceGroups[1].InstanceGroupType != types.InstanceGroupTypeCore {
		t.Errorf("instance groups while bootstrapping: %+v", groups.InstanceGroups)
	}

	h.advance(emulator.DefaultBootstrapTime)
	c = h.cluster(t, id)
	if c.Status.State != types.ClusterStateWaiting || !c.Status.Timeline.ReadyDateTime.Equal(t0.Add(150*time.Millisecond)) {
		t.Fatalf("after bootstrapping: %s ready %v, want WAITING at t0+150ms", c.Status.State, c.Status.Timeline.ReadyDateTime)
	}
	policy, err := h.emr.GetAutoTerminationPolicy(context.Background(), &emr.GetAutoTerminationPolicyInput{ClusterId: aws.String(id)})
	if err != nil || aws.ToInt64(policy.AutoTerminationPolicy.IdleTimeout) != 3600 {
		t.Errorf("GetAutoTerminationPolicy: %+v, %v", policy, err)
	}
	if _, err := h.emr.AddTags(context.Background(), &emr.AddTagsInput{ResourceId: aws.String(id),
		Tags: []types.Tag{{Key: aws.String("team"), Value: aws.String("data")}, {Key: aws.String("berth:cluster-id"), Value: aws.String("cl-0002")}}}); err != nil {
		t.Fatal(err)
	}
	if tags := h.cluster(t, id).Tags; len(tags) != 2 || aws.ToString(tags[0].Value) != "cl-0002" || aws.ToString(tags[1].Key) != "team" {
		t.Errorf("tags after AddTags: %+v", tags)
	}

	if _, err := h.emr.TerminateJobFlows(context.Background(), &emr.TerminateJobFlowsInput{JobFlowIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	c = h.cluster(t, id)
	if c.Status.State != types.ClusterStateTerminating || c.Status.StateChangeReason.Code != types.ClusterStateChangeReasonCodeUserRequest {
		t.Fatalf("after TerminateJobFlows: %s %+v, want TERMINATING USER_REQUEST", c.Status.State, c.Status.StateChangeReason)
	}
	h.advance(emulator.DefaultTerminateTime)
	c = h.cluster(t, id)
	if c.Status.State != types.ClusterStateTerminated || c.Status.Timeline.EndDateTime == nil {
		t.Fatalf("after the terminate time: %s ended %v, want TERMINATED with an end", c.Status.State, c.Status.Timeline.EndDateTime)
	}
	groups, _ = h.emr.ListInstanceGroups(context.Background(), &emr.ListInstanceGroupsInput{ClusterId: aws.String(id)})
	if g := groups.InstanceGroups[1]; g.Status.State != types.InstanceGroupStateTerminated || aws.ToInt32(g.RunningInstanceCount) != 0 {
		t.Errorf("core group of a terminated cluster: %s, %d running", g.Status.State, aws.ToInt32(g.RunningInstanceCount))
	}
	// Terminating again is no error, as on EMR.
	if _, err := h.emr.TerminateJobFlows(context.Background(), &emr.TerminateJobFlowsInput{JobFlowIds: []string{id}}); err != nil {
		t.Errorf("TerminateJobFlows of a terminated cluster: %v", err)
	}

	var sent map[string]any
	reqs := h.emu.Requests("RunJobFlow")
	if len(reqs) != 1 || json.Unmarshal(reqs[0], &sent) != nil || sent["StepConcurrencyLevel"] != 2.0 || sent["Name"] != "berth small cl-0001" {
		t.Errorf("recorded RunJobFlow bodies: %s", reqs)
	}
	if calls := h.emu.Calls(); calls["RunJobFlow"] != 1 || calls["DescribeCluster"] != 6 || calls["TerminateJobFlows"] != 2 {
		t.Errorf("calls %v", calls)
	}
}

// Instance fleets are kept and listed with their capacities, provisioned
// once the cluster boots.
func TestInstanceFleets(t *testing.T) {
	h := newHarness(t, emulator.Options{})
	in := input("fleets", 1)
	in.Instances.InstanceGroups = nil
	in.Instances.InstanceFleets = []types.InstanceFleetConfig{
		{InstanceFleetType: types.InstanceFleetTypeMaster, TargetOnDemandCapacity: aws.Int32(1),
			InstanceTypeConfigs: []types.InstanceTypeConfig{{InstanceType: aws.String("m5.xlarge")}}},
		{InstanceFleetType: types.InstanceFleetTypeCore, TargetSpotCapacity: aws.Int32(8),
			InstanceTypeConfigs: []types.InstanceTypeConfig{{InstanceType: aws.String("r5.2xlarge"), WeightedCapacity: aws.Int32(2)}, {InstanceType: aws.String("r5.4xlarge"), WeightedCapacity: aws.Int32(4)}},
			LaunchSpecifications: &types.InstanceFleetProvisioningSpecifications{SpotSpecification: &types.SpotProvisioningSpecification{
				TimeoutDurationMinutes: aws.Int32(20), TimeoutAction: types.SpotProvisioningTimeoutActionSwitchToOnDemand,
				AllocationStrategy: types.SpotProvisioningAllocationStrategyCapacityOptimized}}},
	}
	id := h.start(t, in)
	list := func() []types.InstanceFleet {
		out, err := h.emr.ListInstanceFleets(context.Background(), &emr.ListInstanceFleetsInput{ClusterId: aws.String(id)})
		if err != nil {
			t.Fatal(err)
		}
		return out.InstanceFleets
	}
	fs := list()
	if len(fs) != 2 || fs[1].Status.State != types.InstanceFleetStateProvisioning || aws.ToInt32(fs[1].ProvisionedSpotCapacity) != 0 {
		t.Fatalf("fleets of a starting cluster: %+v", fs)
	}
	if c := h.cluster(t, id); c.InstanceCollectionType != types.InstanceCollectionTypeInstanceFleet {
		t.Errorf("InstanceCollectionType %s", c.InstanceCollectionType)
	}
	h.advance(emulator.DefaultBootTime, emulator.DefaultBootstrapTime)
	fs = list()
	core := fs[1]
	if core.Status.State != types.InstanceFleetStateRunning || aws.ToInt32(core.TargetSpotCapacity) != 8 || aws.ToInt32(core.ProvisionedSpotCapacity) != 8 ||
		len(core.InstanceTypeSpecifications) != 2 || aws.ToInt32(core.InstanceTypeSpecifications[1].WeightedCapacity) != 4 ||
		core.LaunchSpecifications == nil || aws.ToInt32(core.LaunchSpecifications.SpotSpecification.TimeoutDurationMinutes) != 20 {
		t.Errorf("core fleet of a ready cluster: %+v", core)
	}
	if !strings.HasPrefix(aws.ToString(core.Id), "if-") {
		t.Errorf("fleet id %q", aws.ToString(core.Id))
	}
}

// What EMR refuses, with the exception it answers; nothing is created.
func TestValidation(t *testing.T) {
	h := newHarness(t, emulator.Options{})
	tests := []struct {
		name string
		edit func(*emr.RunJobFlowInput)
		msg  string
	}{
		{"concurrency 0", func(in *emr.RunJobFlowInput) { in.StepConcurrencyLevel = aws.Int32(0) }, "StepConcurrencyLevel must be between 1 and 256"},
		{"concurrency 257", func(in *emr.RunJobFlowInput) { in.StepConcurrencyLevel = aws.Int32(257) }, "StepConcurrencyLevel must be between 1 and 256"},
		{"groups and fleets", func(in *emr.RunJobFlowInput) {
			in.Instances.InstanceFleets = []types.InstanceFleetConfig{{InstanceFleetType: types.InstanceFleetTypeMaster, TargetOnDemandCapacity: aws.Int32(1),
				InstanceTypeConfigs: []types.InstanceTypeConfig{{InstanceType: aws.String("m5.xlarge")}}}}
		}, "not both"},
		{"no instances", func(in *emr.RunJobFlowInput) { in.Instances.InstanceGroups = nil }, "Instance groups or instance fleets are required"},
		{"no master", func(in *emr.RunJobFlowInput) { in.Instances.InstanceGroups = in.Instances.InstanceGroups[1:] }, "exactly one MASTER"},
		{"idle 59", func(in *emr.RunJobFlowInput) {
			in.AutoTerminationPolicy = &types.AutoTerminationPolicy{IdleTimeout: aws.Int64(59)}
		}, "between 60 and 604800 seconds"},
		{"idle 604801", func(in *emr.RunJobFlowInput) {
			in.AutoTerminationPolicy = &types.AutoTerminationPolicy{IdleTimeout: aws.Int64(604801)}
		}, "between 60 and 604800 seconds"},
		{"terminate on failure at concurrency 2", func(in *emr.RunJobFlowInput) {
			s := jar("x")
			s.ActionOnFailure = types.ActionOnFailureTerminateCluster
			in.Steps = []types.StepConfig{s}
		}, "takes only CONTINUE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := input("bad", 2)
			tt.edit(in)
			_, err := h.emr.RunJobFlow(context.Background(), in)
			wantAPIError(t, err, "ValidationException", tt.msg)
		})
	}
	if n := len(h.emu.Snapshot()); n != 0 {
		t.Errorf("refused requests made %d clusters", n)
	}

	id := h.ready(t, input("ok", 2))
	for name, s := range map[string]types.StepConfig{
		"CANCEL_AND_WAIT":           {Name: aws.String("a"), ActionOnFailure: types.ActionOnFailureCancelAndWait, HadoopJarStep: jar("a").HadoopJarStep},
		"unset (TERMINATE_CLUSTER)": {Name: aws.String("b"), HadoopJarStep: jar("b").HadoopJarStep},
	} {
		_, err := h.emr.AddJobFlowSteps(context.Background(), &emr.AddJobFlowStepsInput{JobFlowId: aws.String(id), Steps: []types.StepConfig{s}})
		t.Run("AddJobFlowSteps "+name, func(t *testing.T) { wantAPIError(t, err, "ValidationException", "takes only CONTINUE") })
	}
	if c, _ := h.emu.Cluster(id); len(c.Steps) != 0 {
		t.Errorf("refused steps were added: %+v", c.Steps)
	}

	if _, err := h.emr.TerminateJobFlows(context.Background(), &emr.TerminateJobFlowsInput{JobFlowIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []time.Duration{0, emulator.DefaultTerminateTime} {
		h.advance(d)
		_, err := h.emr.AddJobFlowSteps(context.Background(), &emr.AddJobFlowStepsInput{JobFlowId: aws.String(id), Steps: []types.StepConfig{jar("late")}})
		wantAPIError(t, err, "ValidationException", "A job flow that is shutting down, terminated, or finished may not be modified.")
	}
}

// EMR's answer to a cluster id it does not know, and to an operation it
// does not have.
func TestUnknownClusterAndOperation(t *testing.T) {
	h := newHarness(t, emulator.Options{})
	ctx := context.Background()
	_, err := h.emr.DescribeCluster(ctx, &emr.DescribeClusterInput{ClusterId: aws.String("j-NOSUCHCLUSTER")})
	wantAPIError(t, err, "InvalidRequestException", "Cluster id 'j-NOSUCHCLUSTER' is not valid.")
	var ire *types.InvalidRequestException
	if !errors.As(err, &ire) {
		t.Errorf("DescribeCluster of an unknown id: %T, want *types.InvalidRequestException", err)
	}
	for name, call := range map[string]func() error{
		"ListSteps": func() error {
			_, err := h.emr.ListSteps(ctx, &emr.ListStepsInput{ClusterId: aws.String("j-X")})
			return err
		},
		"AddJobFlowSteps": func() error {
			_, err := h.emr.AddJobFlowSteps(ctx, &emr.AddJobFlowStepsInput{JobFlowId: aws.String("j-X"), Steps: []types.StepConfig{jar("a")}})
			return err
		},
		"TerminateJobFlows": func() error {
			_, err := h.emr.TerminateJobFlows(ctx, &emr.TerminateJobFlowsInput{JobFlowIds: []string{"j-X"}})
			return err
		},
		"CancelSteps": func() error {
			_, err := h.emr.CancelSteps(ctx, &emr.CancelStepsInput{ClusterId: aws.String("j-X"), StepIds: []string{"s-X"}})
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			wantAPIError(t, call(), "InvalidRequestException", "Cluster id 'j-X' is not valid.")
		})
	}

	_, err = h.emr.ListBootstrapActions(ctx, &emr.ListBootstrapActionsInput{ClusterId: aws.String("j-X")})
	if code, _, status := apiError(t, err); code != "UnknownOperationException" || status != http.StatusBadRequest {
		t.Errorf("an operation the emulator lacks: %s %d, want UnknownOperationException 400", code, status)
	}
	req, _ := http.NewRequest(http.MethodPost, h.url+"/", bytes.NewReader([]byte("{}")))
	req.Header.Set("X-Amz-Target", "Frobnicator.RunJobFlow")
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("X-Amzn-ErrorType") != "UnknownOperationException" {
		t.Errorf("another service's target: %d %q", resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"))
	}
}

// ListClusters answers 50 clusters a page, newest first, filtered by state
// and creation time, its pages unmoved by clusters made between them.
func TestListClusters(t *testing.T) {
	h := newHarness(t, emulator.Options{BootTime: time.Hour})
	var ids []string
	for i := range 60 {
		ids = append(ids, h.start(t, input("c", 1)))
		if i == 9 { // the first ten end
			if _, err := h.emr.TerminateJobFlows(context.Background(), &emr.TerminateJobFlowsInput{JobFlowIds: ids}); err != nil {
				t.Fatal(err)
			}
		}
		h.clk.Advance(time.Second)
	}
	slices.Reverse(ids)
	ctx := context.Background()
	first, err := h.emr.ListClusters(ctx, &emr.ListClustersInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Clusters) != 50 || first.Marker == nil {
		t.Fatalf("first page: %d clusters, marker %v; want 50 and a marker", len(first.Clusters), first.Marker)
	}
	h.start(t, input("newer", 1))
	second, err := h.emr.ListClusters(ctx, &emr.ListClustersInput{Marker: first.Marker})
	if err != nil {
		t.Fatal(err)
	}
	if second.Marker != nil {
		t.Errorf("second page has a marker")
	}
	var got []string
	for _, c := range append(first.Clusters, second.Clusters...) {
		got = append(got, aws.ToString(c.Id))
	}
	if !slices.Equal(got, ids) {
		t.Errorf("pages list\n%v\nwant newest first\n%v", got, ids)
	}

	ended, err := h.emr.ListClusters(ctx, &emr.ListClustersInput{ClusterStates: []types.ClusterState{types.ClusterStateTerminated}})
	if err != nil || len(ended.Clusters) != 10 || aws.ToString(ended.Clusters[0].Id) != ids[50] {
		t.Errorf("TERMINATED clusters: %d (%v), want the first ten", len(ended.Clusters), err)
	}
	window, err := h.emr.ListClusters(ctx, &emr.ListClustersInput{CreatedAfter: aws.Time(t0.Add(19500 * time.Millisecond)), CreatedBefore: aws.Time(t0.Add(29500 * time.Millisecond))})
	if err != nil || len(window.Clusters) != 10 {
		t.Errorf("clusters created in a window of 10 s: %d (%v), want 10", len(window.Clusters), err)
	}
	_, err = h.emr.ListClusters(ctx, &emr.ListClustersInput{Marker: aws.String("bogus")})
	wantAPIError(t, err, "InvalidRequestException", "Marker")
}
