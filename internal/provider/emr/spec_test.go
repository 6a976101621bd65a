package emr

import (
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/emr/types"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/config"
	"github.com/berthhq/berth/internal/provider"
)

func testSpec() *config.EMRSpec {
	return &config.EMRSpec{
		Region: "us-east-1", ReleaseLabel: "emr-7.5.0", Applications: []string{"Spark", "Hadoop"},
		ServiceRole: "EMR_DefaultRole", JobFlowRole: "EMR_EC2_DefaultRole", LogURI: "s3://bucket/logs/",
		InstanceGroups: []config.InstanceGroup{
			{Role: "MASTER", InstanceType: "m5.xlarge", Count: 1},
			{Role: "CORE", InstanceType: "r5.2xlarge", Count: 4, Market: "SPOT", BidPrice: "0.50"},
		},
		BootstrapActions: []config.BootstrapAction{{Name: "deps", Path: "s3://bucket/deps.sh", Args: []string{"-q"}}},
		Configurations: []config.Configuration{{Classification: "spark-env", Configurations: []config.Configuration{
			{Classification: "export", Properties: map[string]string{"PYSPARK_PYTHON": "python3"}},
		}}},
		Tags:     map[string]string{"team": "data", TagPool: "spoofed"},
		SubnetID: "subnet-1", KeyName: "ops",
	}
}

func TestRunJobFlowInput(t *testing.T) {
	in := runJobFlowInput(testSpec(), clusterRequest{
		CreateRequest: provider.CreateRequest{ClusterID: "cl-1", Pool: "spark", Slots: 8},
		Installation:  "inst-7", IdleTimeout: 10 * time.Minute,
	})
	if got := aws.ToString(in.Name); got != "berth inst-7 spark cl-1" {
		t.Errorf("name %q", got)
	}
	if !aws.ToBool(in.Instances.KeepJobFlowAliveWhenNoSteps) || aws.ToInt32(in.StepConcurrencyLevel) != 8 {
		t.Errorf("keep alive %v, concurrency %d", aws.ToBool(in.Instances.KeepJobFlowAliveWhenNoSteps), aws.ToInt32(in.StepConcurrencyLevel))
	}
	if got := aws.ToInt64(in.AutoTerminationPolicy.IdleTimeout); got != 1200 {
		t.Errorf("auto-termination after %ds, want 1200 (idle_timeout + 10m)", got)
	}
	tags := map[string]string{}
	for _, tg := range in.Tags {
		tags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	want := map[string]string{TagCluster: "cl-1", TagPool: "spark", TagInstallation: "inst-7", "team": "data"}
	for k, v := range want {
		if tags[k] != v {
			t.Errorf("tag %s = %q, want %q", k, tags[k], v)
		}
	}
	if len(tags) != len(want) {
		t.Errorf("tags %v", tags)
	}
	gs := in.Instances.InstanceGroups
	if len(gs) != 2 || gs[0].Market != types.MarketTypeOnDemand || gs[1].Market != types.MarketTypeSpot ||
		aws.ToString(gs[1].BidPrice) != "0.50" || aws.ToInt32(gs[1].InstanceCount) != 4 || gs[1].InstanceRole != types.InstanceRoleTypeCore {
		t.Errorf("instance groups %+v", gs)
	}
	if aws.ToString(in.Instances.Ec2SubnetId) != "subnet-1" || aws.ToString(in.Instances.Ec2KeyName) != "ops" || aws.ToString(in.LogUri) != "s3://bucket/logs/" {
		t.Errorf("subnet %q key %q log %q", aws.ToString(in.Instances.Ec2SubnetId), aws.ToString(in.Instances.Ec2KeyName), aws.ToString(in.LogUri))
	}
	if len(in.Applications) != 2 || aws.ToString(in.Applications[0].Name) != "Spark" {
		t.Errorf("applications %+v", in.Applications)
	}
	if len(in.BootstrapActions) != 1 || aws.ToString(in.BootstrapActions[0].ScriptBootstrapAction.Path) != "s3://bucket/deps.sh" {
		t.Errorf("bootstrap %+v", in.BootstrapActions)
	}
	c := in.Configurations
	if len(c) != 1 || len(c[0].Configurations) != 1 || c[0].Configurations[0].Properties["PYSPARK_PYTHON"] != "python3" {
		t.Errorf("configurations %+v", c)
	}
}

func TestRunJobFlowInputBounds(t *testing.T) {
	spec := testSpec()
	spec.InstanceGroups, spec.InstanceFleets = nil, []config.InstanceFleet{
		{Role: "MASTER", TargetOnDemandCapacity: 1, InstanceTypes: []string{"m5.xlarge"}},
		{Role: "CORE", TargetSpotCapacity: 8, InstanceTypes: []string{"r5.2xlarge", "r6i.2xlarge"},
			OnDemandAllocationStrategy: "lowest-price", SpotAllocationStrategy: "price-capacity-optimized",
			SpotTimeoutMinutes: 20, SpotTimeoutAction: config.SpotTimeoutSwitch},
	}
	spec.SubnetID, spec.SubnetIDs = "", []string{"subnet-1", "subnet-2"}
	spec.MasterSecurityGroup, spec.AdditionalSecurityGroups = "sg-1", []string{"sg-3"}
	spec.SecurityConfiguration, spec.CustomAmiID, spec.EBSRootVolumeSize = "kerberos", "ami-1", 50
	in := runJobFlowInput(spec, clusterRequest{CreateRequest: provider.CreateRequest{ClusterID: "cl-2", Pool: "p", Slots: 1000}})
	if in.AutoTerminationPolicy != nil {
		t.Error("auto-termination set for a pool without idle_timeout")
	}
	if got := aws.ToInt32(in.StepConcurrencyLevel); got != 256 {
		t.Errorf("concurrency %d, want EMR's bound 256", got)
	}
	fs := in.Instances.InstanceFleets
	if len(fs) != 2 || fs[1].InstanceFleetType != types.InstanceFleetTypeCore || aws.ToInt32(fs[1].TargetSpotCapacity) != 8 || len(fs[1].InstanceTypeConfigs) != 2 {
		t.Errorf("fleets %+v", fs)
	}
	ls := fs[1].LaunchSpecifications
	if ls == nil || ls.OnDemandSpecification.AllocationStrategy != "lowest-price" || ls.SpotSpecification.AllocationStrategy != "price-capacity-optimized" ||
		aws.ToInt32(ls.SpotSpecification.TimeoutDurationMinutes) != 20 || ls.SpotSpecification.TimeoutAction != types.SpotProvisioningTimeoutActionSwitchToOnDemand {
		t.Errorf("launch specifications %+v", ls)
	}
	if fs[0].LaunchSpecifications != nil {
		t.Errorf("a fleet without strategies got launch specifications %+v", fs[0].LaunchSpecifications)
	}
	inst := in.Instances
	if len(inst.Ec2SubnetIds) != 2 || inst.Ec2SubnetId != nil || aws.ToString(inst.EmrManagedMasterSecurityGroup) != "sg-1" || inst.EmrManagedSlaveSecurityGroup != nil ||
		len(inst.AdditionalMasterSecurityGroups) != 1 || len(inst.AdditionalSlaveSecurityGroups) != 1 {
		t.Errorf("network %+v", inst)
	}
	if aws.ToString(in.SecurityConfiguration) != "kerberos" || aws.ToString(in.CustomAmiId) != "ami-1" || aws.ToInt32(in.EbsRootVolumeSize) != 50 {
		t.Errorf("security %q ami %q ebs %d", aws.ToString(in.SecurityConfiguration), aws.ToString(in.CustomAmiId), aws.ToInt32(in.EbsRootVolumeSize))
	}
	long := runJobFlowInput(spec, clusterRequest{CreateRequest: provider.CreateRequest{ClusterID: "cl-3", Pool: "p", Slots: 1}, IdleTimeout: 30 * 24 * time.Hour})
	if got := aws.ToInt64(long.AutoTerminationPolicy.IdleTimeout); got != maxIdleTimeout {
		t.Errorf("auto-termination %ds, want EMR's bound %d", got, maxIdleTimeout)
	}
}

func TestStepConfig(t *testing.T) {
	cmd := stepConfig("berth:job-1:1:0", berth.Step{Args: []string{"spark-submit", "s3://b/x.py"}})
	if aws.ToString(cmd.HadoopJarStep.Jar) != commandRunner || len(cmd.HadoopJarStep.Args) != 2 || cmd.ActionOnFailure != types.ActionOnFailureContinue || aws.ToString(cmd.Name) != "berth:job-1:1:0" {
		t.Errorf("command step %+v", cmd)
	}
	jar := stepConfig("berth:job-1:1:1", berth.Step{Jar: "s3://b/load.jar", MainClass: "com.example.Load", Args: []string{"--t", "x"}})
	if aws.ToString(jar.HadoopJarStep.Jar) != "s3://b/load.jar" || aws.ToString(jar.HadoopJarStep.MainClass) != "com.example.Load" {
		t.Errorf("jar step %+v", jar.HadoopJarStep)
	}
}

func TestCheckStep(t *testing.T) {
	tests := []struct {
		step berth.Step
		ok   bool
	}{
		{berth.Step{Args: []string{"spark-submit", "x.py"}}, true},
		{berth.Step{Jar: "s3://b/x.jar"}, true},
		{berth.Step{}, false},
		{berth.Step{Args: []string{"x"}, Env: map[string]string{"A": "b"}}, false},
		{berth.Step{Args: []string{"x"}, Dir: "/tmp"}, false},
	}
	for _, tt := range tests {
		err := checkStep(tt.step)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, berth.ErrInvalid)) {
			t.Errorf("checkStep(%+v) = %v, want ok %v", tt.step, err, tt.ok)
		}
	}
}
