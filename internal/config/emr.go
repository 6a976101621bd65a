package config

import (
	"maps"
	"slices"
)

// Instance roles and markets, spelled as EMR spells them.
const (
	RoleMaster = "MASTER"
	RoleCore   = "CORE"
	RoleTask   = "TASK"

	MarketOnDemand = "ON_DEMAND"
	MarketSpot     = "SPOT"

	// What EMR does when a fleet's spot capacity does not come in time.
	SpotTimeoutSwitch    = "SWITCH_TO_ON_DEMAND"
	SpotTimeoutTerminate = "TERMINATE_CLUSTER"

	// EMR's bounds on a node's root volume, GiB.
	MinEBSRootVolume = 15
	MaxEBSRootVolume = 100
)

// The allocation strategies EMR takes for instance fleets.
var (
	OnDemandAllocationStrategies = []string{"lowest-price", "prioritized"}
	SpotAllocationStrategies     = []string{"capacity-optimized", "price-capacity-optimized", "lowest-price", "diversified", "capacity-optimized-prioritized"}
)

// EMRSpec is how an EMR cluster of a pool is made: the fields of RunJobFlow
// that Berth lets a pool choose. Berth sets the rest itself (the cluster's
// name and tags, StepConcurrencyLevel from the pool's slots, keeping the
// cluster alive with no steps).
type EMRSpec struct {
	// Region is the AWS region, e.g. us-east-1. Required.
	Region string `yaml:"region"`
	// Endpoint overrides the EMR endpoint (an http or https URL), e.g. for
	// a local emulator. Empty uses AWS's.
	Endpoint string `yaml:"endpoint,omitempty"`
	// ReleaseLabel is the EMR release, e.g. emr-7.5.0. Required.
	ReleaseLabel string `yaml:"release_label"`
	// Applications to install, e.g. [Spark, Hadoop].
	Applications []string `yaml:"applications,omitempty"`
	// ServiceRole is the EMR service role. Default EMR_DefaultRole.
	ServiceRole string `yaml:"service_role"`
	// JobFlowRole is the EC2 instance profile. Default EMR_EC2_DefaultRole.
	JobFlowRole string `yaml:"job_flow_role"`
	// LogURI is an s3:// location for the cluster's logs; empty keeps none.
	LogURI string `yaml:"log_uri,omitempty"`
	// InstanceGroups and InstanceFleets are exclusive; exactly one of them
	// is given.
	InstanceGroups []InstanceGroup `yaml:"instance_groups,omitempty"`
	InstanceFleets []InstanceFleet `yaml:"instance_fleets,omitempty"`
	// BootstrapActions run on every node before the cluster is ready.
	BootstrapActions []BootstrapAction `yaml:"bootstrap_actions,omitempty"`
	// Configurations are EMR's application configurations
	// (spark-defaults, yarn-site, ...).
	Configurations []Configuration `yaml:"configurations,omitempty"`
	// Tags are added to the cluster beside the ones Berth sets itself.
	Tags map[string]string `yaml:"tags,omitempty"`
	// SubnetID is the EC2 subnet to start the cluster in; empty uses the
	// account's default VPC.
	SubnetID string `yaml:"subnet_id,omitempty"`
	// KeyName is an EC2 key pair for SSH to the nodes; empty allows none.
	KeyName string `yaml:"key_name,omitempty"`
	// SubnetIDs lets EMR choose among several subnets, for instance
	// fleets only; exclusive with SubnetID.
	SubnetIDs []string `yaml:"subnet_ids,omitempty"`
	// MasterSecurityGroup and SlaveSecurityGroup replace EMR's managed
	// security groups; AdditionalSecurityGroups are added to every node.
	MasterSecurityGroup      string   `yaml:"master_security_group,omitempty"`
	SlaveSecurityGroup       string   `yaml:"slave_security_group,omitempty"`
	AdditionalSecurityGroups []string `yaml:"additional_security_groups,omitempty"`
	// SecurityConfiguration names an EMR security configuration.
	SecurityConfiguration string `yaml:"security_configuration,omitempty"`
	// CustomAmiID is an EC2 image (ami-...) for the nodes; empty uses
	// EMR's.
	CustomAmiID string `yaml:"custom_ami_id,omitempty"`
	// EBSRootVolumeSize is each node's root volume in GiB, 15..100; 0 uses
	// EMR's default.
	EBSRootVolumeSize int `yaml:"ebs_root_volume_size,omitempty"`
	// PollInterval is how often Berth looks at each cluster while the
	// fleet is small; it polls less often as the fleet grows, to stay
	// within EMR's API limits. 0 means 15s.
	PollInterval Duration `yaml:"poll_interval,omitempty"`
	// TerminateStrays terminates clusters tagged with this installation
	// that Berth does not know; otherwise they are only reported.
	TerminateStrays bool `yaml:"terminate_strays,omitempty"`
}

// InstanceGroup is one uniform group of instances. A spec has exactly one
// MASTER group, of count 1, at most one CORE group and any TASK groups.
type InstanceGroup struct {
	// Role is MASTER, CORE or TASK.
	Role         string `yaml:"role"`
	InstanceType string `yaml:"instance_type"`
	// Count is the number of instances, ≥ 1.
	Count int `yaml:"count"`
	// Market is ON_DEMAND or SPOT. Default ON_DEMAND.
	Market string `yaml:"market"`
	// BidPrice is the maximum spot price in USD (e.g. "0.50"), only for
	// SPOT; empty bids up to the on-demand price.
	BidPrice string `yaml:"bid_price,omitempty"`
}

// InstanceFleet is one fleet of instances drawn from several types. A spec
// has exactly one MASTER fleet, of target capacity 1, and at most one CORE
// and one TASK fleet.
type InstanceFleet struct {
	// Role is MASTER, CORE or TASK.
	Role                   string   `yaml:"role"`
	TargetOnDemandCapacity int      `yaml:"target_on_demand_capacity"`
	TargetSpotCapacity     int      `yaml:"target_spot_capacity"`
	InstanceTypes          []string `yaml:"instance_types"`
	// OnDemandAllocationStrategy is lowest-price or prioritized; empty
	// uses EMR's.
	OnDemandAllocationStrategy string `yaml:"on_demand_allocation_strategy,omitempty"`
	// SpotAllocationStrategy is capacity-optimized, price-capacity-optimized,
	// lowest-price, diversified or capacity-optimized-prioritized; empty
	// uses EMR's.
	SpotAllocationStrategy string `yaml:"spot_allocation_strategy,omitempty"`
	// SpotTimeoutMinutes (5..1440) is how long EMR tries for spot capacity
	// while the cluster starts, before SpotTimeoutAction:
	// SWITCH_TO_ON_DEMAND or TERMINATE_CLUSTER. 0 sets none.
	SpotTimeoutMinutes int    `yaml:"spot_timeout_minutes,omitempty"`
	SpotTimeoutAction  string `yaml:"spot_timeout_action,omitempty"`
}

// BootstrapAction is a script run on every node as it boots.
type BootstrapAction struct {
	Name string `yaml:"name"`
	// Path is the script, usually on S3.
	Path string   `yaml:"path"`
	Args []string `yaml:"args,omitempty"`
}

// Configuration is one EMR application configuration: a classification
// with its properties and nested configurations (export under
// spark-env, for one).
type Configuration struct {
	Classification string            `yaml:"classification"`
	Properties     map[string]string `yaml:"properties,omitempty"`
	Configurations []Configuration   `yaml:"configurations,omitempty"`
}

// Clone returns a deep copy of s, so that a provider may add to its tags or
// lists without changing the configuration.
func (s *EMRSpec) Clone() *EMRSpec {
	if s == nil {
		return nil
	}
	c := *s
	c.Applications = slices.Clone(s.Applications)
	c.InstanceGroups = slices.Clone(s.InstanceGroups)
	c.InstanceFleets = slices.Clone(s.InstanceFleets)
	for i := range c.InstanceFleets {
		c.InstanceFleets[i].InstanceTypes = slices.Clone(c.InstanceFleets[i].InstanceTypes)
	}
	c.BootstrapActions = slices.Clone(s.BootstrapActions)
	for i := range c.BootstrapActions {
		c.BootstrapActions[i].Args = slices.Clone(c.BootstrapActions[i].Args)
	}
	c.Configurations = cloneConfigurations(s.Configurations)
	c.Tags = maps.Clone(s.Tags)
	c.SubnetIDs = slices.Clone(s.SubnetIDs)
	c.AdditionalSecurityGroups = slices.Clone(s.AdditionalSecurityGroups)
	return &c
}

func cloneConfigurations(cs []Configuration) []Configuration {
	if cs == nil {
		return nil
	}
	out := make([]Configuration, len(cs))
	for i, c := range cs {
		out[i] = Configuration{
			Classification: c.Classification,
			Properties:     maps.Clone(c.Properties),
			Configurations: cloneConfigurations(c.Configurations),
		}
	}
	return out
}

// mergeEMR is the fallback spec fb completed from primary, as documented
// on Pool.FallbackEMR. Either may be nil.
func mergeEMR(primary, fb *EMRSpec) *EMRSpec {
	m := fb.Clone()
	if m == nil {
		return primary.Clone()
	}
	p := primary.Clone()
	if p == nil {
		return m
	}
	str := func(dst *string, src string) {
		if *dst == "" {
			*dst = src
		}
	}
	str(&m.Region, p.Region)
	str(&m.Endpoint, p.Endpoint)
	str(&m.ReleaseLabel, p.ReleaseLabel)
	str(&m.ServiceRole, p.ServiceRole)
	str(&m.JobFlowRole, p.JobFlowRole)
	str(&m.LogURI, p.LogURI)
	str(&m.SubnetID, p.SubnetID)
	str(&m.KeyName, p.KeyName)
	str(&m.MasterSecurityGroup, p.MasterSecurityGroup)
	str(&m.SlaveSecurityGroup, p.SlaveSecurityGroup)
	str(&m.SecurityConfiguration, p.SecurityConfiguration)
	str(&m.CustomAmiID, p.CustomAmiID)
	if len(m.SubnetIDs) == 0 && m.SubnetID == "" {
		m.SubnetIDs = p.SubnetIDs
	}
	if len(m.AdditionalSecurityGroups) == 0 {
		m.AdditionalSecurityGroups = p.AdditionalSecurityGroups
	}
	if m.EBSRootVolumeSize == 0 {
		m.EBSRootVolumeSize = p.EBSRootVolumeSize
	}
	m.TerminateStrays = m.TerminateStrays || p.TerminateStrays
	if len(m.Applications) == 0 {
		m.Applications = p.Applications
	}
	if len(m.InstanceGroups) == 0 && len(m.InstanceFleets) == 0 {
		m.InstanceGroups, m.InstanceFleets = p.InstanceGroups, p.InstanceFleets
	}
	if len(m.BootstrapActions) == 0 {
		m.BootstrapActions = p.BootstrapActions
	}
	if len(m.Configurations) == 0 {
		m.Configurations = p.Configurations
	}
	if len(m.Tags) == 0 {
		m.Tags = p.Tags
	}
	return m
}
