package emulator

import (
	"slices"
	"strings"
)

// EMR's values on the wire, as the emulator uses and reports them.
const (
	ClusterStarting             = "STARTING"
	ClusterBootstrapping        = "BOOTSTRAPPING"
	ClusterRunning              = "RUNNING"
	ClusterWaiting              = "WAITING"
	ClusterTerminating          = "TERMINATING"
	ClusterTerminated           = "TERMINATED"
	ClusterTerminatedWithErrors = "TERMINATED_WITH_ERRORS"

	ReasonUserRequest          = "USER_REQUEST"
	ReasonAllStepsCompleted    = "ALL_STEPS_COMPLETED"
	ReasonStepFailure          = "STEP_FAILURE"
	ReasonInstanceFailure      = "INSTANCE_FAILURE"
	ReasonBootstrapFailure     = "BOOTSTRAP_FAILURE"
	ReasonValidationError      = "VALIDATION_ERROR"
	ReasonInstanceFleetTimeout = "INSTANCE_FLEET_TIMEOUT"
	ReasonInternalError        = "INTERNAL_ERROR"

	StepPending       = "PENDING"
	StepCancelPending = "CANCEL_PENDING"
	StepRunning       = "RUNNING"
	StepCompleted     = "COMPLETED"
	StepCancelled     = "CANCELLED"
	StepFailed        = "FAILED"
	StepInterrupted   = "INTERRUPTED"

	ActionContinue         = "CONTINUE"
	ActionCancelAndWait    = "CANCEL_AND_WAIT"
	ActionTerminateCluster = "TERMINATE_CLUSTER"
	ActionTerminateJobFlow = "TERMINATE_JOB_FLOW"

	CancelSendInterrupt    = "SEND_INTERRUPT"
	CancelTerminateProcess = "TERMINATE_PROCESS"
	CancelSubmitted        = "SUBMITTED"
	CancelFailed           = "FAILED"

	CollectionInstanceGroup = "INSTANCE_GROUP"
	CollectionInstanceFleet = "INSTANCE_FLEET"
)

// CommandRunner is the jar whose steps run their Args as a command.
const CommandRunner = "command-runner.jar"

var (
	clusterStates = []string{ClusterStarting, ClusterBootstrapping, ClusterRunning, ClusterWaiting,
		ClusterTerminating, ClusterTerminated, ClusterTerminatedWithErrors}
	stepStates = []string{StepPending, StepCancelPending, StepRunning, StepCompleted, StepCancelled,
		StepFailed, StepInterrupted}
	actions = []string{ActionTerminateJobFlow, ActionTerminateCluster, ActionCancelAndWait, ActionContinue}
	roles   = []string{"MASTER", "CORE", "TASK"}
)

// EMR's bounds.
const (
	maxActiveSteps     = 256
	maxStepConcurrency = 256
	minIdleTimeout     = 60
	maxIdleTimeout     = 7 * 24 * 3600
	// defaultIdleTimeout is EMR's idle timeout for a policy that gives
	// none.
	defaultIdleTimeout = 3600
)

// clusterSpec is what checkRunJobFlow makes of a RunJobFlow request.
type clusterSpec struct {
	level       int
	idleTimeout int64
	keepAlive   bool
	groups      []wireInstanceGroupConfig
	fleets      []wireInstanceFleetConfig
}

// checkRunJobFlow checks what EMR checks of a RunJobFlow request that
// Berth could get wrong, with EMR's exception, and returns the cluster it
// describes.
func checkRunJobFlow(in *runJobFlowInput) (clusterSpec, *apiError) {
	var spec clusterSpec
	if strings.TrimSpace(in.Name) == "" {
		return spec, errValidation("Name is required.")
	}
	if in.Instances == nil {
		return spec, errValidation("Instances is required.")
	}
	spec.level = 1
	if in.StepConcurrencyLevel != nil {
		spec.level = int(*in.StepConcurrencyLevel)
		if spec.level < 1 || spec.level > maxStepConcurrency {
			return spec, errValidation("StepConcurrencyLevel must be between 1 and %d, not %d.", maxStepConcurrency, spec.level)
		}
	}
	if p := in.AutoTerminationPolicy; p != nil {
		spec.idleTimeout = defaultIdleTimeout
		if p.IdleTimeout != nil {
			spec.idleTimeout = *p.IdleTimeout
		}
		if spec.idleTimeout < minIdleTimeout || spec.idleTimeout > maxIdleTimeout {
			return spec, errValidation("The IdleTimeout of an auto-termination policy must be between %d and %d seconds, not %d.",
				minIdleTimeout, maxIdleTimeout, spec.idleTimeout)
		}
	}
	ins := in.Instances
	spec.keepAlive = ins.KeepJobFlowAliveWhenNoSteps != nil && *ins.KeepJobFlowAliveWhenNoSteps
	uniform := ins.MasterInstanceType != "" || ins.SlaveInstanceType != "" || ins.InstanceCount != nil
	switch {
	case len(ins.InstanceGroups) > 0 && len(ins.InstanceFleets) > 0:
		return spec, errValidation("Specify either instance groups or instance fleets for a cluster, not both.")
	case uniform && (len(ins.InstanceGroups) > 0 || len(ins.InstanceFleets) > 0):
		return spec, errValidation("MasterInstanceType, SlaveInstanceType and InstanceCount cannot be used with instance groups or instance fleets.")
	case uniform:
		groups, aerr := uniformGroups(ins)
		if aerr != nil {
			return spec, aerr
		}
		spec.groups = groups
	case len(ins.InstanceGroups) > 0:
		if aerr := checkGroups(ins.InstanceGroups); aerr != nil {
			return spec, aerr
		}
		spec.groups = ins.InstanceGroups
	case len(ins.InstanceFleets) > 0:
		if aerr := checkFleets(ins.InstanceFleets); aerr != nil {
			return spec, aerr
		}
		spec.fleets = ins.InstanceFleets
	default:
		return spec, errValidation("Instance groups or instance fleets are required.")
	}
	if aerr := checkSteps(in.Steps, spec.level); aerr != nil {
		return spec, aerr
	}
	if len(in.Steps) > maxActiveSteps {
		return spec, errValidation("Maximum number of active steps(State = 'Running', 'Pending' or 'Cancel_Pending') for cluster exceeded.")
	}
	return spec, nil
}

// uniformGroups are the instance groups of the old uniform form: one
// master and InstanceCount-1 core instances.
func uniformGroups(ins *wireInstances) ([]wireInstanceGroupConfig, *apiError) {
	if ins.MasterInstanceType == "" {
		return nil, errValidation("MasterInstanceType is required when instance groups and fleets are not given.")
	}
	n := int32(1)
	if ins.InstanceCount != nil {
		n = *ins.InstanceCount
	}
	if n < 1 {
		return nil, errValidation("InstanceCount must be at least 1.")
	}
	gs := []wireInstanceGroupConfig{{Name: "Master", InstanceRole: "MASTER", InstanceType: ins.MasterInstanceType, InstanceCount: 1, Market: "ON_DEMAND"}}
	if n > 1 {
		if ins.SlaveInstanceType == "" {
			return nil, errValidation("SlaveInstanceType is required when InstanceCount is above 1.")
		}
		gs = append(gs, wireInstanceGroupConfig{Name: "Core", InstanceRole: "CORE", InstanceType: ins.SlaveInstanceType, InstanceCount: n - 1, Market: "ON_DEMAND"})
	}
	return gs, nil
}

func checkGroups(gs []wireInstanceGroupConfig) *apiError {
	count := map[string]int{}
	for _, g := range gs {
		if !slices.Contains(roles, g.InstanceRole) {
			return errValidation("InstanceRole '%s' of an instance group is not one of MASTER, CORE, TASK.", g.InstanceRole)
		}
		if g.InstanceType == "" {
			return errValidation("The %s instance group has no InstanceType.", g.InstanceRole)
		}
		if g.Market != "" && g.Market != "ON_DEMAND" && g.Market != "SPOT" {
			return errValidation("Market '%s' of the %s instance group is not one of ON_DEMAND, SPOT.", g.Market, g.InstanceRole)
		}
		if g.InstanceCount < 0 {
			return errValidation("The %s instance group's InstanceCount cannot be negative.", g.InstanceRole)
		}
		count[g.InstanceRole]++
	}
	switch {
	case count["MASTER"] != 1:
		return errValidation("A cluster needs exactly one MASTER instance group, not %d.", count["MASTER"])
	case count["CORE"] > 1:
		return errValidation("A cluster can have at most one CORE instance group, not %d.", count["CORE"])
	}
	for _, g := range gs {
		if g.InstanceRole == "MASTER" && g.InstanceCount != 1 {
			return errValidation("The MASTER instance group must have an InstanceCount of 1, not %d.", g.InstanceCount)
		}
	}
	return nil
}

func checkFleets(fs []wireInstanceFleetConfig) *apiError {
	count := map[string]int{}
	for _, f := range fs {
		if !slices.Contains(roles, f.InstanceFleetType) {
			return errValidation("InstanceFleetType '%s' is not one of MASTER, CORE, TASK.", f.InstanceFleetType)
		}
		if len(f.InstanceTypeConfigs) == 0 {
			return errValidation("The %s instance fleet has no InstanceTypeConfigs.", f.InstanceFleetType)
		}
		for _, it := range f.InstanceTypeConfigs {
			if it.InstanceType == "" {
				return errValidation("An InstanceTypeConfig of the %s instance fleet has no InstanceType.", f.InstanceFleetType)
			}
		}
		if deref(f.TargetOnDemandCapacity) < 0 || deref(f.TargetSpotCapacity) < 0 {
			return errValidation("The %s instance fleet's target capacities cannot be negative.", f.InstanceFleetType)
		}
		if f.InstanceFleetType == "MASTER" && deref(f.TargetOnDemandCapacity)+deref(f.TargetSpotCapacity) != 1 {
			return errValidation("The MASTER instance fleet must have a total target capacity of 1.")
		}
		count[f.InstanceFleetType]++
	}
	for _, r := range roles {
		if count[r] > 1 {
			return errValidation("A cluster can have at most one %s instance fleet, not %d.", r, count[r])
		}
	}
	if count["MASTER"] != 1 {
		return errValidation("A cluster needs exactly one MASTER instance fleet.")
	}
	return nil
}

// checkSteps checks steps for a cluster that runs level steps at once:
// each needs a name and a jar, and with more than one at once EMR takes
// only ActionOnFailure CONTINUE.
func checkSteps(steps []wireStepConfig, level int) *apiError {
	for _, s := range steps {
		if s.Name == "" {
			return errValidation("A step needs a Name.")
		}
		if s.HadoopJarStep == nil || s.HadoopJarStep.Jar == "" {
			return errValidation("Step '%s' needs a HadoopJarStep with a Jar.", s.Name)
		}
		a := actionOf(s)
		if !slices.Contains(actions, a) {
			return errValidation("ActionOnFailure '%s' of step '%s' is not one of %s.", a, s.Name, strings.Join(actions, ", "))
		}
		if level > 1 && a != ActionContinue {
			return errValidation("The ActionOnFailure %s of step '%s' is not valid: a cluster whose StepConcurrencyLevel is above 1 (%d) takes only CONTINUE.", a, s.Name, level)
		}
	}
	return nil
}

// actionOf is a step's ActionOnFailure; EMR's API default is to
// terminate the cluster.
func actionOf(s wireStepConfig) string {
	if s.ActionOnFailure == "" {
		return ActionTerminateCluster
	}
	return s.ActionOnFailure
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
