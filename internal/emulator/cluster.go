package emulator

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/berthhq/berth/internal/clock"
)

// fault is what a cluster is set to go through when it starts.
type fault int

const (
	faultNone fault = iota
	// faultCapacity: EC2 has no capacity for it; it never bootstraps.
	faultCapacity
	// faultBootstrap: its first bootstrap action fails on the master.
	faultBootstrap
)

type cluster struct {
	id, name, arn string
	seq           int
	in            *runJobFlowInput

	state, code, message string
	// final is the state TERMINATING leads to.
	final                 string
	created, ready, ended time.Time

	tags                 []wireTag
	level                int
	idleTimeout          int64
	autoTerminate        bool
	terminationProtected bool
	visibleToAll         bool
	collection           string
	groups               []*group
	fleets               []*fleet
	steps                []*step
	master               string
	zone                 string

	fault fault
	// doomed is set once the cluster is being lost or terminated: no
	// step starts on it any more.
	doomed bool

	// timer is the cluster's next state change; gen tells a stale
	// callback (one that fired as it was stopped) from the current one.
	timer     clock.Timer
	gen       int
	idleTimer clock.Timer
	idleGen   int
	lossTimer clock.Timer
	lossGen   int

	// dir is the temporary working directory of the cluster's step
	// processes, made at the first one.
	dir string
}

type group struct {
	id                    string
	cfg                   wireInstanceGroupConfig
	state, code, message  string
	created, ready, ended time.Time
	running               int32
}

type fleet struct {
	id                    string
	cfg                   wireInstanceFleetConfig
	state, code, message  string
	created, ready, ended time.Time
	onDemand, spot        int32
}

func (c *cluster) alive() bool {
	switch c.state {
	case ClusterTerminating, ClusterTerminated, ClusterTerminatedWithErrors:
		return false
	}
	return true
}

// isReady is true once the cluster runs steps: WAITING or RUNNING.
func (c *cluster) isReady() bool {
	return c.state == ClusterWaiting || c.state == ClusterRunning
}

func (c *cluster) step(id string) *step {
	for _, s := range c.steps {
		if s.id == id {
			return s
		}
	}
	return nil
}

// running is the number of steps that hold a place: RUNNING, and
// CANCEL_PENDING until their process ends (EMR does not start a pending
// step in the place of one being cancelled).
func (c *cluster) running() int {
	n := 0
	for _, s := range c.steps {
		if s.state == StepRunning || s.state == StepCancelPending {
			n++
		}
	}
	return n
}

// active is the number of steps EMR counts against its 256: PENDING,
// RUNNING and CANCEL_PENDING.
func (c *cluster) active() int {
	n := c.running()
	for _, s := range c.steps {
		if s.state == StepPending {
			n++
		}
	}
	return n
}

func (c *cluster) setTag(k, v string) {
	for i := range c.tags {
		if c.tags[i].Key == k {
			c.tags[i].Value = v
			return
		}
	}
	c.tags = append(c.tags, wireTag{Key: k, Value: v})
}

func (c *cluster) stopTimers() {
	c.gen++
	c.idleGen++
	c.lossGen++
	for _, t := range []clock.Timer{c.timer, c.idleTimer, c.lossTimer} {
		if t != nil {
			t.Stop()
		}
	}
	c.timer, c.idleTimer, c.lossTimer = nil, nil, nil
}

// afterFunc runs fn with e.mu held once d has passed on the emulator's
// clock, unless the emulator is closed by then.
func (e *Emulator) afterFunc(d time.Duration, fn func()) clock.Timer {
	return e.clk.AfterFunc(d, func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		if !e.closed {
			fn()
		}
	})
}

// schedule makes fn the cluster's next state change, after d, in place
// of the one pending.
func (e *Emulator) schedule(c *cluster, d time.Duration, fn func()) {
	if c.timer != nil {
		c.timer.Stop()
	}
	c.gen++
	g := c.gen
	c.timer = e.afterFunc(d, func() {
		if c.gen == g {
			c.timer = nil
			fn()
		}
	})
}

func (e *Emulator) createCluster(in *runJobFlowInput, spec clusterSpec) *cluster {
	now := e.clk.Now()
	e.seq++
	c := &cluster{
		id:            e.newID("j-", 13, upperAlnum),
		name:          in.Name,
		seq:           e.seq,
		in:            in,
		state:         ClusterStarting,
		created:       now,
		tags:          slices.Clone(in.Tags),
		level:         spec.level,
		idleTimeout:   spec.idleTimeout,
		autoTerminate: !spec.keepAlive,
		visibleToAll:  in.VisibleToAllUsers == nil || *in.VisibleToAllUsers,
		master:        e.newID("i-", 17, hexDigits),
		zone:          e.opts.Region + "a",
	}
	c.arn = fmt.Sprintf("arn:aws:elasticmapreduce:%s:%s:cluster/%s", e.opts.Region, e.opts.Account, c.id)
	c.terminationProtected = in.Instances.TerminationProtected != nil && *in.Instances.TerminationProtected
	if p := in.Instances.Placement; p != nil && p.AvailabilityZone != "" {
		c.zone = p.AvailabilityZone
	}
	c.collection = CollectionInstanceGroup
	for _, g := range spec.groups {
		c.groups = append(c.groups, &group{id: e.newID("ig-", 13, upperAlnum), cfg: g, state: "PROVISIONING", created: now})
	}
	if len(spec.fleets) > 0 {
		c.collection = CollectionInstanceFleet
		for _, f := range spec.fleets {
			c.fleets = append(c.fleets, &fleet{id: e.newID("if-", 13, upperAlnum), cfg: f, state: "PROVISIONING", created: now})
		}
	}
	switch {
	case e.failCapacity > 0:
		e.failCapacity--
		c.fault = faultCapacity
	case e.failBootstraps > 0:
		e.failBootstraps--
		c.fault = faultBootstrap
	}
	e.clusters[c.id] = c
	e.order = append(e.order, c)
	for _, sc := range in.Steps {
		e.addStep(c, sc)
	}
	e.log.Info("cluster created", "cluster", c.id, "name", c.name, "fault", c.fault)
	e.schedule(c, e.opts.BootTime, func() { e.booted(c) })
	return c
}

// booted ends STARTING: the instances are up and bootstrap, unless EC2
// had no capacity for them.
func (e *Emulator) booted(c *cluster) {
	if c.fault == faultCapacity {
		code, msg := e.capacityFailure(c)
		e.terminate(c, code, msg, StepCancelled)
		return
	}
	c.state = ClusterBootstrapping
	for _, g := range c.groups {
		g.state, g.running = ClusterBootstrapping, g.cfg.InstanceCount
	}
	for _, f := range c.fleets {
		f.state, f.onDemand, f.spot = ClusterBootstrapping, deref(f.cfg.TargetOnDemandCapacity), deref(f.cfg.TargetSpotCapacity)
	}
	e.schedule(c, e.opts.BootstrapTime, func() { e.bootstrapped(c) })
}

// bootstrapped ends BOOTSTRAPPING: the cluster is ready, unless its
// bootstrap action fails.
func (e *Emulator) bootstrapped(c *cluster) {
	if c.fault == faultBootstrap {
		e.terminate(c, ReasonBootstrapFailure,
			fmt.Sprintf("On the master instance (%s), bootstrap action 1 returned a non-zero return code", c.master), StepCancelled)
		return
	}
	now := e.clk.Now()
	c.state, c.ready = ClusterWaiting, now
	for _, g := range c.groups {
		g.state, g.ready = ClusterRunning, now
	}
	for _, f := range c.fleets {
		f.state, f.ready = ClusterRunning, now
	}
	e.log.Info("cluster ready", "cluster", c.id)
	e.settle(c)
}

// capacityFailure is EMR's reason for a cluster EC2 had no capacity for:
// a fleet times out provisioning; a group is out of capacity (EMR says
// INTERNAL_ERROR, with a message naming the type and zone).
func (e *Emulator) capacityFailure(c *cluster) (code, msg string) {
	if len(c.fleets) > 0 {
		f := c.fleets[len(c.fleets)-1]
		for _, x := range c.fleets {
			if x.cfg.InstanceFleetType == "CORE" {
				f = x
			}
		}
		var types []string
		for _, it := range f.cfg.InstanceTypeConfigs {
			types = append(types, it.InstanceType)
		}
		return ReasonInstanceFleetTimeout, fmt.Sprintf(
			"The instance fleet %s (%s) could not be provisioned within its provisioning timeout: EC2 has insufficient capacity for %s in availability zone %s.",
			f.id, f.cfg.InstanceFleetType, strings.Join(types, ", "), c.zone)
	}
	g := c.groups[0]
	for _, x := range c.groups {
		if x.cfg.InstanceRole == "CORE" {
			g = x
		}
	}
	return ReasonInternalError, fmt.Sprintf(
		"EC2 is out of capacity for %s in availability zone %s. Learn more at https://docs.aws.amazon.com/console/elasticmapreduce/ERROR_noinstancecapacity",
		g.cfg.InstanceType, c.zone)
}

// terminate starts the end of a cluster for the reason code and msg: it
// is TERMINATING, its pending steps are CANCELLED and its running ones
// end runningEnd, their processes killed; after TerminateTime it is
// TERMINATED, or TERMINATED_WITH_ERRORS for a failure.
func (e *Emulator) terminate(c *cluster, code, msg, runningEnd string) {
	now := e.clk.Now()
	c.stopTimers()
	c.doomed = true
	c.state, c.code, c.message = ClusterTerminating, code, msg
	c.final = ClusterTerminatedWithErrors
	if code == ReasonUserRequest || code == ReasonAllStepsCompleted {
		c.final = ClusterTerminated
	}
	for _, s := range c.steps {
		switch s.state {
		case StepPending:
			s.state, s.ended = StepCancelled, now
		case StepRunning, StepCancelPending:
			e.endRunning(c, s, runningEnd, nil)
		}
	}
	for _, g := range c.groups {
		g.state = ClusterTerminating
	}
	for _, f := range c.fleets {
		f.state = ClusterTerminating
	}
	e.log.Info("cluster terminating", "cluster", c.id, "code", code, "message", msg)
	e.schedule(c, e.opts.TerminateTime, func() { e.terminated(c) })
}

func (e *Emulator) terminated(c *cluster) {
	now := e.clk.Now()
	c.state, c.ended = c.final, now
	for _, g := range c.groups {
		g.state, g.code, g.message, g.ended, g.running = ClusterTerminated, "CLUSTER_TERMINATED", "Instance group terminated: its cluster terminated", now, 0
	}
	for _, f := range c.fleets {
		f.state, f.code, f.message, f.ended, f.onDemand, f.spot = ClusterTerminated, "CLUSTER_TERMINATED", "Instance fleet terminated: its cluster terminated", now, 0, 0
	}
	e.log.Info("cluster terminated", "cluster", c.id, "state", c.state)
}

// settle brings a ready cluster in line with its steps: pending steps
// start, in the order they were added, while there is a place; the
// cluster is RUNNING while steps run and WAITING when none do; an idle
// cluster that keeps no job flow alive ends, and one with an
// auto-termination policy starts counting its idle time.
func (e *Emulator) settle(c *cluster) {
	if !c.isReady() {
		return
	}
	if !c.doomed {
		for c.isReady() && c.running() < c.level {
			s := c.nextPending()
			if s == nil {
				break
			}
			e.startStep(c, s)
		}
		if !c.isReady() {
			return // a step's failure ended the cluster
		}
	}
	c.state = ClusterWaiting
	if c.running() > 0 {
		c.state = ClusterRunning
	}
	if c.doomed || c.active() > 0 {
		e.stopIdle(c)
		return
	}
	if c.autoTerminate {
		e.terminate(c, ReasonAllStepsCompleted, "Steps completed", StepInterrupted)
		return
	}
	if c.idleTimeout > 0 && c.idleTimer == nil {
		idle := time.Duration(float64(c.idleTimeout) * e.opts.IdleScale * float64(time.Second))
		c.idleGen++
		g := c.idleGen
		c.idleTimer = e.afterFunc(idle, func() {
			if c.idleGen != g || !c.isReady() || c.doomed || c.active() > 0 {
				return
			}
			c.idleTimer = nil
			e.terminate(c, ReasonAllStepsCompleted, fmt.Sprintf(
				"Cluster was terminated by its auto-termination policy after being idle for %d seconds", c.idleTimeout), StepInterrupted)
		})
	}
}

func (e *Emulator) stopIdle(c *cluster) {
	c.idleGen++
	if c.idleTimer != nil {
		c.idleTimer.Stop()
		c.idleTimer = nil
	}
}

func (c *cluster) nextPending() *step {
	for _, s := range c.steps {
		if s.state == StepPending {
			return s
		}
	}
	return nil
}

func (c *cluster) wireStatus() wireClusterStatus {
	return wireClusterStatus{
		State:             c.state,
		StateChangeReason: reason(c.code, c.message),
		Timeline:          wireTimeline{CreationDateTime: at(c.created), ReadyDateTime: at(c.ready), EndDateTime: at(c.ended)},
	}
}

func (c *cluster) wire() wireCluster {
	in := c.in
	ins := in.Instances
	w := wireCluster{
		ID:                     c.id,
		Name:                   c.name,
		Status:                 c.wireStatus(),
		InstanceCollectionType: c.collection,
		LogURI:                 in.LogURI,
		ReleaseLabel:           in.ReleaseLabel,
		AutoTerminate:          c.autoTerminate,
		TerminationProtected:   c.terminationProtected,
		VisibleToAllUsers:      c.visibleToAll,
		Applications:           in.Applications,
		Tags:                   slices.Clone(c.tags),
		ServiceRole:            in.ServiceRole,
		Configurations:         in.Configurations,
		SecurityConfiguration:  in.SecurityConfiguration,
		CustomAmiID:            in.CustomAmiID,
		EbsRootVolumeSize:      in.EbsRootVolumeSize,
		ClusterArn:             c.arn,
		StepConcurrencyLevel:   int32(c.level),
		Ec2InstanceAttributes: &wireEc2InstanceAttributes{
			Ec2KeyName:                     ins.Ec2KeyName,
			Ec2SubnetID:                    ins.Ec2SubnetID,
			RequestedEc2SubnetIDs:          ins.Ec2SubnetIDs,
			Ec2AvailabilityZone:            c.zone,
			IamInstanceProfile:             in.JobFlowRole,
			EmrManagedMasterSecurityGroup:  ins.EmrManagedMasterSecurityGroup,
			EmrManagedSlaveSecurityGroup:   ins.EmrManagedSlaveSecurityGroup,
			ServiceAccessSecurityGroup:     ins.ServiceAccessSecurityGroup,
			AdditionalMasterSecurityGroups: ins.AdditionalMasterSecurityGroups,
			AdditionalSlaveSecurityGroups:  ins.AdditionalSlaveSecurityGroups,
		},
	}
	if w.Ec2InstanceAttributes.Ec2SubnetID == "" && len(ins.Ec2SubnetIDs) > 0 {
		w.Ec2InstanceAttributes.Ec2SubnetID = ins.Ec2SubnetIDs[0]
	}
	return w
}

func (g *group) wire() wireInstanceGroup {
	market := g.cfg.Market
	if market == "" {
		market = "ON_DEMAND"
	}
	return wireInstanceGroup{
		ID:                     g.id,
		Name:                   g.cfg.Name,
		Market:                 market,
		InstanceGroupType:      g.cfg.InstanceRole,
		BidPrice:               g.cfg.BidPrice,
		InstanceType:           g.cfg.InstanceType,
		RequestedInstanceCount: g.cfg.InstanceCount,
		RunningInstanceCount:   g.running,
		Status: wireClusterStatus{State: g.state, StateChangeReason: reason(g.code, g.message),
			Timeline: wireTimeline{CreationDateTime: at(g.created), ReadyDateTime: at(g.ready), EndDateTime: at(g.ended)}},
		Configurations: g.cfg.Configuration,
		CustomAmiID:    g.cfg.CustomAmiID,
	}
}

func (f *fleet) wire() wireInstanceFleet {
	w := wireInstanceFleet{
		ID:                          f.id,
		Name:                        f.cfg.Name,
		InstanceFleetType:           f.cfg.InstanceFleetType,
		TargetOnDemandCapacity:      deref(f.cfg.TargetOnDemandCapacity),
		TargetSpotCapacity:          deref(f.cfg.TargetSpotCapacity),
		ProvisionedOnDemandCapacity: f.onDemand,
		ProvisionedSpotCapacity:     f.spot,
		LaunchSpecifications:        f.cfg.LaunchSpecifications,
		ResizeSpecifications:        f.cfg.ResizeSpecifications,
		Context:                     f.cfg.Context,
		Status: wireClusterStatus{State: f.state, StateChangeReason: reason(f.code, f.message),
			Timeline: wireTimeline{CreationDateTime: at(f.created), ReadyDateTime: at(f.ready), EndDateTime: at(f.ended)}},
	}
	for _, it := range f.cfg.InstanceTypeConfigs {
		w.InstanceTypeSpecifications = append(w.InstanceTypeSpecifications, wireInstanceTypeSpecification{
			InstanceType:                        it.InstanceType,
			WeightedCapacity:                    max(deref(it.WeightedCapacity), 1),
			BidPrice:                            it.BidPrice,
			BidPriceAsPercentageOfOnDemandPrice: it.BidPriceAsPercentageOfOnDemandPrice,
			Configurations:                      it.Configurations,
			CustomAmiID:                         it.CustomAmiID,
			Priority:                            it.Priority,
		})
	}
	return w
}

func timeOf(t *epoch) time.Time { return time.Time(*t) }

func (f fault) String() string {
	switch f {
	case faultCapacity:
		return "capacity"
	case faultBootstrap:
		return "bootstrap"
	}
	return "none"
}
