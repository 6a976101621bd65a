package emr

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/emr"
	"github.com/aws/aws-sdk-go-v2/service/emr/types"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/config"
	"github.com/berthhq/berth/internal/provider"
)

// The tags Berth puts on every cluster it starts, so that a restarted
// Berth finds its clusters with ListClusters and a few DescribeCluster
// calls, and tells its own from those of another installation.
const (
	TagCluster      = "berth:cluster-id"
	TagPool         = "berth:pool"
	TagInstallation = "berth:installation"
)

// commandRunner is EMR's jar that runs a command line on the master node.
const commandRunner = "command-runner.jar"

// EMR's bounds on the auto-termination idle timeout, in seconds.
const (
	minIdleTimeout = 60
	maxIdleTimeout = 7 * 24 * 3600
)

// autoTerminationMargin is how much longer than the pool's idle_timeout
// EMR waits before it ends an idle cluster by itself: a safety net for a
// Berth that is down, never a race with Berth's own scale-in.
const autoTerminationMargin = 10 * time.Minute

// clusterRequest is what RunJobFlow needs beyond the pool's spec.
type clusterRequest struct {
	provider.CreateRequest
	// Installation names this Berth installation in the cluster's tags.
	Installation string
	// IdleTimeout is the pool's idle_timeout; 0 sets no auto-termination.
	IdleTimeout time.Duration
}

// runJobFlowInput is the RunJobFlow call for one cluster of spec. Berth
// always keeps the cluster alive with no steps, runs `slots` steps at once,
// and names and tags it for the cluster id, pool and installation; the
// pool's own tags are added, and cannot replace Berth's.
func runJobFlowInput(spec *config.EMRSpec, r clusterRequest) *emr.RunJobFlowInput {
	tags := map[string]string{}
	maps.Copy(tags, spec.Tags)
	tags[TagCluster], tags[TagPool], tags[TagInstallation] = r.ClusterID, r.Pool, r.Installation
	in := &emr.RunJobFlowInput{
		Name:                 aws.String(clusterName(r.Installation, r.Pool, r.ClusterID)),
		ReleaseLabel:         aws.String(spec.ReleaseLabel),
		ServiceRole:          aws.String(spec.ServiceRole),
		JobFlowRole:          aws.String(spec.JobFlowRole),
		StepConcurrencyLevel: aws.Int32(int32(min(max(r.Slots, 1), 256))),
		VisibleToAllUsers:    aws.Bool(true),
		Instances: &types.JobFlowInstancesConfig{
			KeepJobFlowAliveWhenNoSteps: aws.Bool(true),
			InstanceGroups:              instanceGroups(spec.InstanceGroups),
			InstanceFleets:              instanceFleets(spec.InstanceFleets),
		},
		Applications:     applications(spec.Applications),
		BootstrapActions: bootstrapActions(spec.BootstrapActions),
		Configurations:   configurations(spec.Configurations),
	}
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		in.Tags = append(in.Tags, types.Tag{Key: aws.String(k), Value: aws.String(tags[k])})
	}
	if spec.LogURI != "" {
		in.LogUri = aws.String(spec.LogURI)
	}
	if spec.SubnetID != "" {
		in.Instances.Ec2SubnetId = aws.String(spec.SubnetID)
	}
	if spec.KeyName != "" {
		in.Instances.Ec2KeyName = aws.String(spec.KeyName)
	}
	in.Instances.Ec2SubnetIds = slices.Clone(spec.SubnetIDs)
	in.Instances.EmrManagedMasterSecurityGroup = optional(spec.MasterSecurityGroup)
	in.Instances.EmrManagedSlaveSecurityGroup = optional(spec.SlaveSecurityGroup)
	in.Instances.AdditionalMasterSecurityGroups = slices.Clone(spec.AdditionalSecurityGroups)
	in.Instances.AdditionalSlaveSecurityGroups = slices.Clone(spec.AdditionalSecurityGroups)
	in.SecurityConfiguration = optional(spec.SecurityConfiguration)
	in.CustomAmiId = optional(spec.CustomAmiID)
	if spec.EBSRootVolumeSize > 0 {
		in.EbsRootVolumeSize = aws.Int32(int32(spec.EBSRootVolumeSize))
	}
	if r.IdleTimeout > 0 {
		idle := int64((r.IdleTimeout + autoTerminationMargin) / time.Second)
		in.AutoTerminationPolicy = &types.AutoTerminationPolicy{IdleTimeout: aws.Int64(min(max(idle, minIdleTimeout), maxIdleTimeout))}
	}
	return in
}

// clusterName is the name of a cluster Berth starts: it carries the
// installation, pool and cluster id, so that one ListClusters call (which
// returns names, not tags) tells a restarted Berth which clusters are its.
func clusterName(installation, pool, clusterID string) string {
	return fmt.Sprintf("berth %s %s %s", installation, pool, clusterID)
}

// parseClusterName reads a name made by clusterName; ok is false for any
// other.
func parseClusterName(name string) (installation, pool, clusterID string, ok bool) {
	f := strings.Fields(name)
	if len(f) != 4 || f[0] != "berth" {
		return "", "", "", false
	}
	return f[1], f[2], f[3], true
}

// optional is nil for "" (EMR's default), else s.
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return aws.String(s)
}

func instanceGroups(gs []config.InstanceGroup) []types.InstanceGroupConfig {
	var out []types.InstanceGroupConfig
	for _, g := range gs {
		c := types.InstanceGroupConfig{
			InstanceRole:  types.InstanceRoleType(g.Role),
			InstanceType:  aws.String(g.InstanceType),
			InstanceCount: aws.Int32(int32(g.Count)),
			Market:        types.MarketType(marketOr(g.Market)),
		}
		if g.BidPrice != "" {
			c.BidPrice = aws.String(g.BidPrice)
		}
		out = append(out, c)
	}
	return out
}

func marketOr(m string) string {
	if m == "" {
		return config.MarketOnDemand
	}
	return m
}

func instanceFleets(fs []config.InstanceFleet) []types.InstanceFleetConfig {
	var out []types.InstanceFleetConfig
	for _, f := range fs {
		c := types.InstanceFleetConfig{
			InstanceFleetType:      types.InstanceFleetType(f.Role),
			TargetOnDemandCapacity: aws.Int32(int32(f.TargetOnDemandCapacity)),
			TargetSpotCapacity:     aws.Int32(int32(f.TargetSpotCapacity)),
		}
		for _, it := range f.InstanceTypes {
			c.InstanceTypeConfigs = append(c.InstanceTypeConfigs, types.InstanceTypeConfig{InstanceType: aws.String(it)})
		}
		if f.OnDemandAllocationStrategy != "" || f.SpotAllocationStrategy != "" || f.SpotTimeoutMinutes > 0 {
			ls := &types.InstanceFleetProvisioningSpecifications{}
			if f.OnDemandAllocationStrategy != "" {
				ls.OnDemandSpecification = &types.OnDemandProvisioningSpecification{
					AllocationStrategy: types.OnDemandProvisioningAllocationStrategy(f.OnDemandAllocationStrategy)}
			}
			if f.SpotAllocationStrategy != "" || f.SpotTimeoutMinutes > 0 {
				ls.SpotSpecification = &types.SpotProvisioningSpecification{
					AllocationStrategy: types.SpotProvisioningAllocationStrategy(f.SpotAllocationStrategy),
					TimeoutAction:      types.SpotProvisioningTimeoutAction(f.SpotTimeoutAction),
				}
				if f.SpotTimeoutMinutes > 0 {
					ls.SpotSpecification.TimeoutDurationMinutes = aws.Int32(int32(f.SpotTimeoutMinutes))
				}
			}
			c.LaunchSpecifications = ls
		}
		out = append(out, c)
	}
	return out
}

func applications(names []string) []types.Application {
	var out []types.Application
	for _, n := range names {
		out = append(out, types.Application{Name: aws.String(n)})
	}
	return out
}

func bootstrapActions(bs []config.BootstrapAction) []types.BootstrapActionConfig {
	var out []types.BootstrapActionConfig
	for _, b := range bs {
		out = append(out, types.BootstrapActionConfig{
			Name:                  aws.String(b.Name),
			ScriptBootstrapAction: &types.ScriptBootstrapActionConfig{Path: aws.String(b.Path), Args: slices.Clone(b.Args)},
		})
	}
	return out
}

func configurations(cs []config.Configuration) []types.Configuration {
	var out []types.Configuration
	for _, c := range cs {
		out = append(out, types.Configuration{
			Classification: aws.String(c.Classification),
			Properties:     maps.Clone(c.Properties),
			Configurations: configurations(c.Configurations),
		})
	}
	return out
}

// stepConfig is the AddJobFlowSteps entry for one step of an attempt: a
// command line through command-runner.jar, or the step's own jar and main
// class. It is named for the attempt (berth.StepName), which is how a
// restarted Berth recognises the steps it had added, AddJobFlowSteps having
// no idempotency token; and it continues on failure, as EMR requires of
// steps that run concurrently.
func stepConfig(name string, st berth.Step) types.StepConfig {
	jar := types.HadoopJarStepConfig{Jar: aws.String(commandRunner), Args: slices.Clone(st.Args)}
	if st.Jar != "" {
		jar.Jar = aws.String(st.Jar)
		if st.MainClass != "" {
			jar.MainClass = aws.String(st.MainClass)
		}
		for _, k := range slices.Sorted(maps.Keys(st.Properties)) {
			jar.Properties = append(jar.Properties, types.KeyValue{Key: aws.String(k), Value: aws.String(st.Properties[k])})
		}
	}
	return types.StepConfig{Name: aws.String(name), ActionOnFailure: types.ActionOnFailureContinue, HadoopJarStep: &jar}
}

// checkStep says whether EMR can run a step: it needs a command or a jar,
// and takes neither an environment nor a working directory (a step runs
// as the hadoop user on the master node, where Berth cannot set them).
func checkStep(st berth.Step) error {
	switch {
	case st.Jar == "" && len(st.Args) == 0:
		return fmt.Errorf("%w: an EMR step needs args (a command for command-runner.jar) or a jar", berth.ErrInvalid)
	case len(st.Env) > 0:
		return fmt.Errorf("%w: EMR steps take no env; pass settings as args or in the pool's configurations", berth.ErrInvalid)
	case st.Dir != "":
		return fmt.Errorf("%w: EMR steps take no dir; they run in the hadoop user's home on the master node", berth.ErrInvalid)
	}
	return nil
}
