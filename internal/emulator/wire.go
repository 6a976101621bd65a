package emulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
)

// The shapes below are EMR's on the wire (awsJson1.1): members by their
// Smithy names, absent members left out, timestamps as epoch seconds.
// Only what the emulator reads or answers is here; the SDK skips what it
// does not know and leaves out what it has no value for.

// epoch is a timestamp on the wire: seconds since 1970 as a JSON number,
// to the millisecond, as the SDK reads and writes them.
type epoch time.Time

func (t epoch) MarshalJSON() ([]byte, error) {
	ms := time.Time(t).UnixMilli()
	return strconv.AppendFloat(nil, float64(ms)/1e3, 'f', -1, 64), nil
}

func (t *epoch) UnmarshalJSON(b []byte) error {
	f, err := strconv.ParseFloat(string(bytes.TrimSpace(b)), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Errorf("timestamp %s: want epoch seconds", b)
	}
	sec, frac := math.Modf(f)
	*t = epoch(time.Unix(int64(sec), int64(math.Round(frac*1e3))*int64(time.Millisecond)).UTC())
	return nil
}

// at is t on the wire, or nil for the zero time (a member left out).
func at(t time.Time) *epoch {
	if t.IsZero() {
		return nil
	}
	e := epoch(t)
	return &e
}

type wireTag struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

type wireApplication struct {
	Name           string            `json:"Name,omitempty"`
	Version        string            `json:"Version,omitempty"`
	Args           []string          `json:"Args,omitempty"`
	AdditionalInfo map[string]string `json:"AdditionalInfo,omitempty"`
}

type wireConfiguration struct {
	Classification string              `json:"Classification,omitempty"`
	Configurations []wireConfiguration `json:"Configurations,omitempty"`
	Properties     map[string]string   `json:"Properties,omitempty"`
}

type wireKeyValue struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

type wireHadoopJarStep struct {
	Properties []wireKeyValue `json:"Properties,omitempty"`
	Jar        string         `json:"Jar"`
	MainClass  string         `json:"MainClass,omitempty"`
	Args       []string       `json:"Args,omitempty"`
}

type wireStepConfig struct {
	Name            string             `json:"Name"`
	ActionOnFailure string             `json:"ActionOnFailure,omitempty"`
	HadoopJarStep   *wireHadoopJarStep `json:"HadoopJarStep"`
}

type wireInstanceGroupConfig struct {
	Name          string              `json:"Name,omitempty"`
	Market        string              `json:"Market,omitempty"`
	InstanceRole  string              `json:"InstanceRole"`
	BidPrice      string              `json:"BidPrice,omitempty"`
	InstanceType  string              `json:"InstanceType"`
	InstanceCount int32               `json:"InstanceCount"`
	Configuration []wireConfiguration `json:"Configurations,omitempty"`
	CustomAmiID   string              `json:"CustomAmiId,omitempty"`
}

type wireInstanceTypeConfig struct {
	InstanceType                        string              `json:"InstanceType"`
	WeightedCapacity                    *int32              `json:"WeightedCapacity,omitempty"`
	BidPrice                            string              `json:"BidPrice,omitempty"`
	BidPriceAsPercentageOfOnDemandPrice *float64            `json:"BidPriceAsPercentageOfOnDemandPrice,omitempty"`
	Configurations                      []wireConfiguration `json:"Configurations,omitempty"`
	CustomAmiID                         string              `json:"CustomAmiId,omitempty"`
	Priority                            *float64            `json:"Priority,omitempty"`
}

// wireLaunchSpecifications is kept as sent and answered as it was: the
// emulator does not act on allocation strategies.
type wireInstanceFleetConfig struct {
	Name                   string                   `json:"Name,omitempty"`
	InstanceFleetType      string                   `json:"InstanceFleetType"`
	TargetOnDemandCapacity *int32                   `json:"TargetOnDemandCapacity,omitempty"`
	TargetSpotCapacity     *int32                   `json:"TargetSpotCapacity,omitempty"`
	InstanceTypeConfigs    []wireInstanceTypeConfig `json:"InstanceTypeConfigs,omitempty"`
	LaunchSpecifications   json.RawMessage          `json:"LaunchSpecifications,omitempty"`
	ResizeSpecifications   json.RawMessage          `json:"ResizeSpecifications,omitempty"`
	Context                string                   `json:"Context,omitempty"`
}

type wirePlacement struct {
	AvailabilityZone  string   `json:"AvailabilityZone,omitempty"`
	AvailabilityZones []string `json:"AvailabilityZones,omitempty"`
}

type wireInstances struct {
	MasterInstanceType             string                    `json:"MasterInstanceType,omitempty"`
	SlaveInstanceType              string                    `json:"SlaveInstanceType,omitempty"`
	InstanceCount                  *int32                    `json:"InstanceCount,omitempty"`
	InstanceGroups                 []wireInstanceGroupConfig `json:"InstanceGroups,omitempty"`
	InstanceFleets                 []wireInstanceFleetConfig `json:"InstanceFleets,omitempty"`
	Ec2KeyName                     string                    `json:"Ec2KeyName,omitempty"`
	Placement                      *wirePlacement            `json:"Placement,omitempty"`
	KeepJobFlowAliveWhenNoSteps    *bool                     `json:"KeepJobFlowAliveWhenNoSteps,omitempty"`
	TerminationProtected           *bool                     `json:"TerminationProtected,omitempty"`
	Ec2SubnetID                    string                    `json:"Ec2SubnetId,omitempty"`
	Ec2SubnetIDs                   []string                  `json:"Ec2SubnetIds,omitempty"`
	EmrManagedMasterSecurityGroup  string                    `json:"EmrManagedMasterSecurityGroup,omitempty"`
	EmrManagedSlaveSecurityGroup   string                    `json:"EmrManagedSlaveSecurityGroup,omitempty"`
	ServiceAccessSecurityGroup     string                    `json:"ServiceAccessSecurityGroup,omitempty"`
	AdditionalMasterSecurityGroups []string                  `json:"AdditionalMasterSecurityGroups,omitempty"`
	AdditionalSlaveSecurityGroups  []string                  `json:"AdditionalSlaveSecurityGroups,omitempty"`
}

type wireAutoTerminationPolicy struct {
	IdleTimeout *int64 `json:"IdleTimeout,omitempty"`
}

type runJobFlowInput struct {
	Name                  string                     `json:"Name"`
	LogURI                string                     `json:"LogUri,omitempty"`
	ReleaseLabel          string                     `json:"ReleaseLabel,omitempty"`
	Instances             *wireInstances             `json:"Instances"`
	Steps                 []wireStepConfig           `json:"Steps,omitempty"`
	Applications          []wireApplication          `json:"Applications,omitempty"`
	Configurations        []wireConfiguration        `json:"Configurations,omitempty"`
	VisibleToAllUsers     *bool                      `json:"VisibleToAllUsers,omitempty"`
	JobFlowRole           string                     `json:"JobFlowRole,omitempty"`
	ServiceRole           string                     `json:"ServiceRole,omitempty"`
	Tags                  []wireTag                  `json:"Tags,omitempty"`
	SecurityConfiguration string                     `json:"SecurityConfiguration,omitempty"`
	CustomAmiID           string                     `json:"CustomAmiId,omitempty"`
	EbsRootVolumeSize     *int32                     `json:"EbsRootVolumeSize,omitempty"`
	StepConcurrencyLevel  *int32                     `json:"StepConcurrencyLevel,omitempty"`
	AutoTerminationPolicy *wireAutoTerminationPolicy `json:"AutoTerminationPolicy,omitempty"`
}

type runJobFlowOutput struct {
	JobFlowID  string `json:"JobFlowId"`
	ClusterArn string `json:"ClusterArn"`
}

type wireStateChangeReason struct {
	Code    string `json:"Code,omitempty"`
	Message string `json:"Message,omitempty"`
}

// reason is r on the wire, or nil when it has neither code nor message.
func reason(code, msg string) *wireStateChangeReason {
	if code == "" && msg == "" {
		return nil
	}
	return &wireStateChangeReason{Code: code, Message: msg}
}

type wireTimeline struct {
	CreationDateTime *epoch `json:"CreationDateTime,omitempty"`
	ReadyDateTime    *epoch `json:"ReadyDateTime,omitempty"`
	EndDateTime      *epoch `json:"EndDateTime,omitempty"`
}

type wireClusterStatus struct {
	State             string                 `json:"State"`
	StateChangeReason *wireStateChangeReason `json:"StateChangeReason,omitempty"`
	Timeline          wireTimeline           `json:"Timeline"`
}

type wireEc2InstanceAttributes struct {
	Ec2KeyName                     string   `json:"Ec2KeyName,omitempty"`
	Ec2SubnetID                    string   `json:"Ec2SubnetId,omitempty"`
	RequestedEc2SubnetIDs          []string `json:"RequestedEc2SubnetIds,omitempty"`
	Ec2AvailabilityZone            string   `json:"Ec2AvailabilityZone,omitempty"`
	IamInstanceProfile             string   `json:"IamInstanceProfile,omitempty"`
	EmrManagedMasterSecurityGroup  string   `json:"EmrManagedMasterSecurityGroup,omitempty"`
	EmrManagedSlaveSecurityGroup   string   `json:"EmrManagedSlaveSecurityGroup,omitempty"`
	ServiceAccessSecurityGroup     string   `json:"ServiceAccessSecurityGroup,omitempty"`
	AdditionalMasterSecurityGroups []string `json:"AdditionalMasterSecurityGroups,omitempty"`
	AdditionalSlaveSecurityGroups  []string `json:"AdditionalSlaveSecurityGroups,omitempty"`
}

type wireCluster struct {
	ID                      string                     `json:"Id"`
	Name                    string                     `json:"Name"`
	Status                  wireClusterStatus          `json:"Status"`
	Ec2InstanceAttributes   *wireEc2InstanceAttributes `json:"Ec2InstanceAttributes,omitempty"`
	InstanceCollectionType  string                     `json:"InstanceCollectionType"`
	LogURI                  string                     `json:"LogUri,omitempty"`
	ReleaseLabel            string                     `json:"ReleaseLabel,omitempty"`
	AutoTerminate           bool                       `json:"AutoTerminate"`
	TerminationProtected    bool                       `json:"TerminationProtected"`
	VisibleToAllUsers       bool                       `json:"VisibleToAllUsers"`
	Applications            []wireApplication          `json:"Applications,omitempty"`
	Tags                    []wireTag                  `json:"Tags,omitempty"`
	ServiceRole             string                     `json:"ServiceRole,omitempty"`
	NormalizedInstanceHours int32                      `json:"NormalizedInstanceHours"`
	MasterPublicDNSName     string                     `json:"MasterPublicDnsName,omitempty"`
	Configurations          []wireConfiguration        `json:"Configurations,omitempty"`
	SecurityConfiguration   string                     `json:"SecurityConfiguration,omitempty"`
	CustomAmiID             string                     `json:"CustomAmiId,omitempty"`
	EbsRootVolumeSize       *int32                     `json:"EbsRootVolumeSize,omitempty"`
	ClusterArn              string                     `json:"ClusterArn"`
	StepConcurrencyLevel    int32                      `json:"StepConcurrencyLevel"`
}

type clusterIDInput struct {
	ClusterID string `json:"ClusterId"`
}

type describeClusterOutput struct {
	Cluster wireCluster `json:"Cluster"`
}

type listClustersInput struct {
	CreatedAfter  *epoch   `json:"CreatedAfter,omitempty"`
	CreatedBefore *epoch   `json:"CreatedBefore,omitempty"`
	ClusterStates []string `json:"ClusterStates,omitempty"`
	Marker        string   `json:"Marker,omitempty"`
}

type wireClusterSummary struct {
	ID                      string            `json:"Id"`
	Name                    string            `json:"Name"`
	Status                  wireClusterStatus `json:"Status"`
	NormalizedInstanceHours int32             `json:"NormalizedInstanceHours"`
	ClusterArn              string            `json:"ClusterArn"`
}

type listClustersOutput struct {
	Clusters []wireClusterSummary `json:"Clusters"`
	Marker   string               `json:"Marker,omitempty"`
}

type terminateJobFlowsInput struct {
	JobFlowIDs []string `json:"JobFlowIds"`
}

type addJobFlowStepsInput struct {
	JobFlowID string           `json:"JobFlowId"`
	Steps     []wireStepConfig `json:"Steps"`
}

type addJobFlowStepsOutput struct {
	StepIDs []string `json:"StepIds"`
}

type listStepsInput struct {
	ClusterID  string   `json:"ClusterId"`
	StepStates []string `json:"StepStates,omitempty"`
	StepIDs    []string `json:"StepIds,omitempty"`
	Marker     string   `json:"Marker,omitempty"`
}

type wireHadoopStepConfig struct {
	Jar        string            `json:"Jar,omitempty"`
	Properties map[string]string `json:"Properties,omitempty"`
	MainClass  string            `json:"MainClass,omitempty"`
	Args       []string          `json:"Args,omitempty"`
}

type wireFailureDetails struct {
	Reason  string `json:"Reason,omitempty"`
	Message string `json:"Message,omitempty"`
	LogFile string `json:"LogFile,omitempty"`
}

type wireStepTimeline struct {
	CreationDateTime *epoch `json:"CreationDateTime,omitempty"`
	StartDateTime    *epoch `json:"StartDateTime,omitempty"`
	EndDateTime      *epoch `json:"EndDateTime,omitempty"`
}

type wireStepStatus struct {
	State             string                 `json:"State"`
	StateChangeReason *wireStateChangeReason `json:"StateChangeReason,omitempty"`
	FailureDetails    *wireFailureDetails    `json:"FailureDetails,omitempty"`
	Timeline          wireStepTimeline       `json:"Timeline"`
}

// wireStep is both a StepSummary (ListSteps) and a Step (DescribeStep):
// the two have the same members here.
type wireStep struct {
	ID              string               `json:"Id"`
	Name            string               `json:"Name"`
	Config          wireHadoopStepConfig `json:"Config"`
	ActionOnFailure string               `json:"ActionOnFailure"`
	Status          wireStepStatus       `json:"Status"`
}

type listStepsOutput struct {
	Steps  []wireStep `json:"Steps"`
	Marker string     `json:"Marker,omitempty"`
}

type describeStepInput struct {
	ClusterID string `json:"ClusterId"`
	StepID    string `json:"StepId"`
}

type describeStepOutput struct {
	Step wireStep `json:"Step"`
}

type cancelStepsInput struct {
	ClusterID              string   `json:"ClusterId"`
	StepIDs                []string `json:"StepIds"`
	StepCancellationOption string   `json:"StepCancellationOption,omitempty"`
}

type wireCancelStepsInfo struct {
	StepID string `json:"StepId"`
	Status string `json:"Status"`
	Reason string `json:"Reason,omitempty"`
}

type cancelStepsOutput struct {
	CancelStepsInfoList []wireCancelStepsInfo `json:"CancelStepsInfoList"`
}

type listWithMarkerInput struct {
	ClusterID string `json:"ClusterId"`
	Marker    string `json:"Marker,omitempty"`
}

type wireInstanceTypeSpecification struct {
	InstanceType                        string              `json:"InstanceType"`
	WeightedCapacity                    int32               `json:"WeightedCapacity"`
	BidPrice                            string              `json:"BidPrice,omitempty"`
	BidPriceAsPercentageOfOnDemandPrice *float64            `json:"BidPriceAsPercentageOfOnDemandPrice,omitempty"`
	Configurations                      []wireConfiguration `json:"Configurations,omitempty"`
	CustomAmiID                         string              `json:"CustomAmiId,omitempty"`
	Priority                            *float64            `json:"Priority,omitempty"`
}

type wireInstanceFleet struct {
	ID                          string                          `json:"Id"`
	Name                        string                          `json:"Name,omitempty"`
	Status                      wireClusterStatus               `json:"Status"`
	InstanceFleetType           string                          `json:"InstanceFleetType"`
	TargetOnDemandCapacity      int32                           `json:"TargetOnDemandCapacity"`
	TargetSpotCapacity          int32                           `json:"TargetSpotCapacity"`
	ProvisionedOnDemandCapacity int32                           `json:"ProvisionedOnDemandCapacity"`
	ProvisionedSpotCapacity     int32                           `json:"ProvisionedSpotCapacity"`
	InstanceTypeSpecifications  []wireInstanceTypeSpecification `json:"InstanceTypeSpecifications,omitempty"`
	LaunchSpecifications        json.RawMessage                 `json:"LaunchSpecifications,omitempty"`
	ResizeSpecifications        json.RawMessage                 `json:"ResizeSpecifications,omitempty"`
	Context                     string                          `json:"Context,omitempty"`
}

type listInstanceFleetsOutput struct {
	InstanceFleets []wireInstanceFleet `json:"InstanceFleets"`
	Marker         string              `json:"Marker,omitempty"`
}

type wireInstanceGroup struct {
	ID                     string              `json:"Id"`
	Name                   string              `json:"Name,omitempty"`
	Market                 string              `json:"Market"`
	InstanceGroupType      string              `json:"InstanceGroupType"`
	BidPrice               string              `json:"BidPrice,omitempty"`
	InstanceType           string              `json:"InstanceType"`
	RequestedInstanceCount int32               `json:"RequestedInstanceCount"`
	RunningInstanceCount   int32               `json:"RunningInstanceCount"`
	Status                 wireClusterStatus   `json:"Status"`
	Configurations         []wireConfiguration `json:"Configurations,omitempty"`
	CustomAmiID            string              `json:"CustomAmiId,omitempty"`
}

type listInstanceGroupsOutput struct {
	InstanceGroups []wireInstanceGroup `json:"InstanceGroups"`
	Marker         string              `json:"Marker,omitempty"`
}

type getAutoTerminationPolicyOutput struct {
	AutoTerminationPolicy *wireAutoTerminationPolicy `json:"AutoTerminationPolicy,omitempty"`
}

type addTagsInput struct {
	ResourceID string    `json:"ResourceId"`
	ClusterID  string    `json:"ClusterId,omitempty"`
	Tags       []wireTag `json:"Tags"`
}

// wireError is an error's body; the type is also in X-Amzn-ErrorType.
type wireError struct {
	Type    string `json:"__type"`
	Message string `json:"Message"`
}
