package emulator

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// apiError is an EMR error answer: its status, the code the SDK reads
// from __type and X-Amzn-ErrorType, and the message.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func errValidation(format string, a ...any) *apiError {
	return &apiError{http.StatusBadRequest, "ValidationException", fmt.Sprintf(format, a...)}
}

func errInvalidRequest(format string, a ...any) *apiError {
	return &apiError{http.StatusBadRequest, "InvalidRequestException", fmt.Sprintf(format, a...)}
}

// errNoCluster is EMR's answer for a cluster id it does not know.
func errNoCluster(id string) *apiError {
	return errInvalidRequest("Cluster id '%s' is not valid.", id)
}

func errThrottled() *apiError {
	return &apiError{http.StatusBadRequest, "ThrottlingException", "Rate exceeded"}
}

// errDropped is the answer to a call whose reply was lost: it took effect
// but the caller cannot know.
func errDropped() *apiError {
	return &apiError{http.StatusInternalServerError, "InternalFailure", "We encountered an internal error. Please try again."}
}

func writeError(w http.ResponseWriter, err *apiError) {
	w.Header().Set("X-Amzn-ErrorType", err.Code)
	writeJSON(w, err.Status, wireError{Type: err.Code, Message: err.Message})
}

// operation answers one call, its body decoded; it runs with e.mu held.
type operation func(e *Emulator, body []byte) (any, *apiError)

var operations = map[string]operation{
	"RunJobFlow":               decoded((*Emulator).runJobFlow),
	"DescribeCluster":          decoded((*Emulator).describeCluster),
	"ListClusters":             decoded((*Emulator).listClusters),
	"TerminateJobFlows":        decoded((*Emulator).terminateJobFlows),
	"AddJobFlowSteps":          decoded((*Emulator).addJobFlowSteps),
	"ListSteps":                decoded((*Emulator).listSteps),
	"DescribeStep":             decoded((*Emulator).describeStep),
	"CancelSteps":              decoded((*Emulator).cancelSteps),
	"ListInstanceFleets":       decoded((*Emulator).listInstanceFleets),
	"ListInstanceGroups":       decoded((*Emulator).listInstanceGroups),
	"GetAutoTerminationPolicy": decoded((*Emulator).getAutoTerminationPolicy),
	"AddTags":                  decoded((*Emulator).addTags),
}

// decoded makes an operation of a handler of a decoded input.
func decoded[In any](h func(*Emulator, *In) (any, *apiError)) operation {
	return func(e *Emulator, body []byte) (any, *apiError) {
		in := new(In)
		if len(body) > 0 {
			if err := json.Unmarshal(body, in); err != nil {
				return nil, &apiError{http.StatusBadRequest, "SerializationException", "the request body is not valid: " + err.Error()}
			}
		}
		return h(e, in)
	}
}

func (e *Emulator) serveEMR(w http.ResponseWriter, r *http.Request) {
	svc, op, _ := strings.Cut(r.Header.Get("X-Amz-Target"), ".")
	body, err := readBody(r)
	if err != nil {
		writeError(w, &apiError{http.StatusBadRequest, "SerializationException", err.Error()})
		return
	}
	handle, known := operations[op]
	known = known && svc == "ElasticMapReduce"

	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		writeError(w, &apiError{http.StatusServiceUnavailable, "ServiceUnavailable", "the emulator is closed"})
		return
	}
	e.calls[op]++
	e.requests[op] = append(e.requests[op], body)
	var out any
	var aerr *apiError
	switch {
	case !known:
		aerr = &apiError{http.StatusBadRequest, "UnknownOperationException", fmt.Sprintf("the EMR emulator does not know operation %q", r.Header.Get("X-Amz-Target"))}
	case e.throttle && !e.takeToken(op):
		e.throttled++
		aerr = errThrottled()
	default:
		if f := e.nextCallFault(op); f != nil {
			aerr = f
			break
		}
		out, aerr = handle(e, body)
		if aerr == nil && e.dropReplies[op] > 0 {
			e.dropReplies[op]--
			out, aerr = nil, errDropped()
		}
	}
	delay := e.latencyOf(op)
	e.mu.Unlock()

	if aerr != nil {
		e.log.Debug("emr call", "operation", op, "error", aerr.Code, "message", aerr.Message)
	} else {
		e.log.Debug("emr call", "operation", op)
	}
	if delay > 0 {
		select {
		case <-e.clk.After(delay):
		case <-r.Context().Done():
			return
		case <-e.done:
		}
	}
	w.Header().Set("X-Amzn-RequestId", e.requestID())
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (e *Emulator) requestID() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	b := make([]byte, 32)
	for i := range b {
		b[i] = hexDigits[e.rnd.IntN(len(hexDigits))]
	}
	s := string(b)
	return s[:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:]
}

// pageSize is how many clusters or steps EMR answers a page.
const pageSize = 50

// page returns the page of items, newest first, that marker names (""
// the first), and the marker of the next page ("" after the last). A
// marker is the creation sequence number of the last item of its page,
// so a page does not shift when newer items arrive.
func page[T any](items []T, seq func(T) int, marker string) ([]T, string, *apiError) {
	items = slices.Clone(items)
	slices.SortFunc(items, func(a, b T) int { return seq(b) - seq(a) })
	if marker != "" {
		raw, err := base64.RawURLEncoding.DecodeString(marker)
		n, err2 := strconv.Atoi(strings.TrimPrefix(string(raw), "after:"))
		if err != nil || err2 != nil || !strings.HasPrefix(string(raw), "after:") {
			return nil, "", errInvalidRequest("Marker '%s' is not valid.", marker)
		}
		i := slices.IndexFunc(items, func(t T) bool { return seq(t) < n })
		if i < 0 {
			i = len(items)
		}
		items = items[i:]
	}
	if len(items) <= pageSize {
		return items, "", nil
	}
	items = items[:pageSize]
	next := base64.RawURLEncoding.EncodeToString([]byte("after:" + strconv.Itoa(seq(items[len(items)-1]))))
	return items, next, nil
}

func (e *Emulator) cluster(id string) (*cluster, *apiError) {
	c := e.clusters[id]
	if c == nil {
		return nil, errNoCluster(id)
	}
	return c, nil
}

func (e *Emulator) runJobFlow(in *runJobFlowInput) (any, *apiError) {
	spec, aerr := checkRunJobFlow(in)
	if aerr != nil {
		return nil, aerr
	}
	c := e.createCluster(in, spec)
	return runJobFlowOutput{JobFlowID: c.id, ClusterArn: c.arn}, nil
}

func (e *Emulator) describeCluster(in *clusterIDInput) (any, *apiError) {
	c, aerr := e.cluster(in.ClusterID)
	if aerr != nil {
		return nil, aerr
	}
	return describeClusterOutput{Cluster: c.wire()}, nil
}

func (e *Emulator) listClusters(in *listClustersInput) (any, *apiError) {
	for _, s := range in.ClusterStates {
		if !slices.Contains(clusterStates, s) {
			return nil, errValidation("Value '%s' at 'clusterStates' failed to satisfy constraint: Member must satisfy enum value set: [%s]", s, strings.Join(clusterStates, ", "))
		}
	}
	var match []*cluster
	for _, c := range e.order {
		switch {
		case len(in.ClusterStates) > 0 && !slices.Contains(in.ClusterStates, c.state):
		case in.CreatedAfter != nil && c.created.Before(timeOf(in.CreatedAfter)):
		case in.CreatedBefore != nil && c.created.After(timeOf(in.CreatedBefore)):
		default:
			match = append(match, c)
		}
	}
	pg, next, aerr := page(match, func(c *cluster) int { return c.seq }, in.Marker)
	if aerr != nil {
		return nil, aerr
	}
	out := listClustersOutput{Clusters: []wireClusterSummary{}, Marker: next}
	for _, c := range pg {
		out.Clusters = append(out.Clusters, wireClusterSummary{ID: c.id, Name: c.name, Status: c.wireStatus(), ClusterArn: c.arn})
	}
	return out, nil
}

func (e *Emulator) terminateJobFlows(in *terminateJobFlowsInput) (any, *apiError) {
	if len(in.JobFlowIDs) == 0 {
		return nil, errValidation("The JobFlowIds list cannot be empty.")
	}
	var cs []*cluster
	for _, id := range in.JobFlowIDs {
		c, aerr := e.cluster(id)
		if aerr != nil {
			return nil, aerr
		}
		if c.terminationProtected && c.alive() {
			return nil, errValidation("Could not shut down one or more job flows since they are termination protected.")
		}
		cs = append(cs, c)
	}
	for _, c := range cs {
		if c.alive() {
			e.terminate(c, ReasonUserRequest, "Terminated by user request", StepInterrupted)
		}
	}
	return struct{}{}, nil
}

func (e *Emulator) addJobFlowSteps(in *addJobFlowStepsInput) (any, *apiError) {
	c, aerr := e.cluster(in.JobFlowID)
	if aerr != nil {
		return nil, aerr
	}
	if !c.alive() {
		return nil, errValidation("A job flow that is shutting down, terminated, or finished may not be modified.")
	}
	if len(in.Steps) == 0 {
		return nil, errValidation("The Steps list cannot be empty.")
	}
	if aerr := checkSteps(in.Steps, c.level); aerr != nil {
		return nil, aerr
	}
	if c.active()+len(in.Steps) > maxActiveSteps {
		return nil, errValidation("Maximum number of active steps(State = 'Running', 'Pending' or 'Cancel_Pending') for cluster exceeded.")
	}
	out := addJobFlowStepsOutput{StepIDs: []string{}}
	for _, sc := range in.Steps {
		out.StepIDs = append(out.StepIDs, e.addStep(c, sc).id)
	}
	e.settle(c)
	return out, nil
}

func (e *Emulator) listSteps(in *listStepsInput) (any, *apiError) {
	c, aerr := e.cluster(in.ClusterID)
	if aerr != nil {
		return nil, aerr
	}
	for _, s := range in.StepStates {
		if !slices.Contains(stepStates, s) {
			return nil, errValidation("Value '%s' at 'stepStates' failed to satisfy constraint: Member must satisfy enum value set: [%s]", s, strings.Join(stepStates, ", "))
		}
	}
	var match []*step
	for _, s := range c.steps {
		if (len(in.StepStates) == 0 || slices.Contains(in.StepStates, s.state)) &&
			(len(in.StepIDs) == 0 || slices.Contains(in.StepIDs, s.id)) {
			match = append(match, s)
		}
	}
	pg, next, aerr := page(match, func(s *step) int { return s.seq }, in.Marker)
	if aerr != nil {
		return nil, aerr
	}
	out := listStepsOutput{Steps: []wireStep{}, Marker: next}
	for _, s := range pg {
		out.Steps = append(out.Steps, s.wire())
	}
	return out, nil
}

func (e *Emulator) describeStep(in *describeStepInput) (any, *apiError) {
	c, aerr := e.cluster(in.ClusterID)
	if aerr != nil {
		return nil, aerr
	}
	s := c.step(in.StepID)
	if s == nil {
		return nil, errInvalidRequest("Step id '%s' is not valid.", in.StepID)
	}
	return describeStepOutput{Step: s.wire()}, nil
}

func (e *Emulator) cancelSteps(in *cancelStepsInput) (any, *apiError) {
	c, aerr := e.cluster(in.ClusterID)
	if aerr != nil {
		return nil, aerr
	}
	opt := in.StepCancellationOption
	if opt == "" {
		opt = CancelSendInterrupt
	}
	if opt != CancelSendInterrupt && opt != CancelTerminateProcess {
		return nil, errValidation("Value '%s' at 'stepCancellationOption' failed to satisfy constraint: Member must satisfy enum value set: [SEND_INTERRUPT, TERMINATE_PROCESS]", opt)
	}
	if len(in.StepIDs) == 0 || len(in.StepIDs) > maxActiveSteps {
		return nil, errValidation("StepIds must name 1 to %d steps.", maxActiveSteps)
	}
	out := cancelStepsOutput{CancelStepsInfoList: []wireCancelStepsInfo{}}
	for _, id := range in.StepIDs {
		info := wireCancelStepsInfo{StepID: id, Status: CancelSubmitted}
		if why := e.cancel(c, id, opt); why != "" {
			info.Status, info.Reason = CancelFailed, why
		}
		out.CancelStepsInfoList = append(out.CancelStepsInfoList, info)
	}
	e.settle(c)
	return out, nil
}

func (e *Emulator) listInstanceFleets(in *listWithMarkerInput) (any, *apiError) {
	c, aerr := e.cluster(in.ClusterID)
	if aerr != nil {
		return nil, aerr
	}
	out := listInstanceFleetsOutput{InstanceFleets: []wireInstanceFleet{}}
	for _, f := range c.fleets {
		out.InstanceFleets = append(out.InstanceFleets, f.wire())
	}
	return out, nil
}

func (e *Emulator) listInstanceGroups(in *listWithMarkerInput) (any, *apiError) {
	c, aerr := e.cluster(in.ClusterID)
	if aerr != nil {
		return nil, aerr
	}
	out := listInstanceGroupsOutput{InstanceGroups: []wireInstanceGroup{}}
	for _, g := range c.groups {
		out.InstanceGroups = append(out.InstanceGroups, g.wire())
	}
	return out, nil
}

func (e *Emulator) getAutoTerminationPolicy(in *clusterIDInput) (any, *apiError) {
	c, aerr := e.cluster(in.ClusterID)
	if aerr != nil {
		return nil, aerr
	}
	out := getAutoTerminationPolicyOutput{}
	if c.idleTimeout > 0 {
		out.AutoTerminationPolicy = &wireAutoTerminationPolicy{IdleTimeout: &c.idleTimeout}
	}
	return out, nil
}

func (e *Emulator) addTags(in *addTagsInput) (any, *apiError) {
	id := in.ResourceID
	if id == "" {
		id = in.ClusterID
	}
	c, aerr := e.cluster(id)
	if aerr != nil {
		return nil, aerr
	}
	if len(in.Tags) == 0 {
		return nil, errValidation("The Tags list cannot be empty.")
	}
	for _, t := range in.Tags {
		if t.Key == "" {
			return nil, errValidation("A tag's Key cannot be empty.")
		}
	}
	for _, t := range in.Tags {
		c.setTag(t.Key, t.Value)
	}
	return struct{}{}, nil
}
