package emr

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/emr/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/provider"
)

// answer is an EMR error answer as the SDK returns it: the API error in a
// response error with its HTTP status.
func answer(status int, code, msg string) error {
	return &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
			Err: &smithy.GenericAPIError{Code: code, Message: msg}},
	}
}

func TestClusterState(t *testing.T) {
	st := func(s types.ClusterState, code types.ClusterStateChangeReasonCode, msg string) *types.ClusterStatus {
		return &types.ClusterStatus{State: s, StateChangeReason: &types.ClusterStateChangeReason{Code: code, Message: aws.String(msg)}}
	}
	tests := []struct {
		name   string
		status *types.ClusterStatus
		state  berth.ClusterState
		class  provider.Class
	}{
		{"starting", st(types.ClusterStateStarting, "", ""), berth.ClusterStarting, ""},
		{"bootstrapping", st(types.ClusterStateBootstrapping, "", ""), berth.ClusterStarting, ""},
		{"waiting", st(types.ClusterStateWaiting, "", ""), berth.ClusterReady, ""},
		{"running", st(types.ClusterStateRunning, "", ""), berth.ClusterReady, ""},
		{"terminating by request", st(types.ClusterStateTerminating, types.ClusterStateChangeReasonCodeUserRequest, "Terminated by user request"), berth.ClusterTerminating, ""},
		{"terminated by request", st(types.ClusterStateTerminated, types.ClusterStateChangeReasonCodeUserRequest, "Terminated by user request"), berth.ClusterTerminated, ""},
		{"auto-terminated", st(types.ClusterStateTerminated, types.ClusterStateChangeReasonCodeAllStepsCompleted, "idle"), berth.ClusterTerminated, ""},
		{"spot loss", st(types.ClusterStateTerminatedWithErrors, types.ClusterStateChangeReasonCodeInstanceFailure, "The master node was terminated"), berth.ClusterLost, provider.ClassCapacity},
		{"terminating after a loss", st(types.ClusterStateTerminating, types.ClusterStateChangeReasonCodeInstanceFailure, "lost"), berth.ClusterLost, provider.ClassCapacity},
		{"fleet timeout", st(types.ClusterStateTerminatedWithErrors, types.ClusterStateChangeReasonCodeInstanceFleetTimeout, "timed out"), berth.ClusterLost, provider.ClassCapacity},
		{"bootstrap", st(types.ClusterStateTerminatedWithErrors, types.ClusterStateChangeReasonCodeBootstrapFailure, "bootstrap action 1 returned a non-zero return code"), berth.ClusterLost, provider.ClassPermanent},
		{"validation", st(types.ClusterStateTerminatedWithErrors, types.ClusterStateChangeReasonCodeValidationError, "The subnet does not exist"), berth.ClusterLost, provider.ClassPermanent},
		{"validation for capacity", st(types.ClusterStateTerminatedWithErrors, types.ClusterStateChangeReasonCodeValidationError, "Instance type r5.2xlarge: Insufficient capacity"), berth.ClusterLost, provider.ClassCapacity},
		{"internal", st(types.ClusterStateTerminatedWithErrors, types.ClusterStateChangeReasonCodeInternalError, "internal error"), berth.ClusterLost, provider.ClassTransient},
		// moto gives no reason at all.
		{"terminated with no reason", &types.ClusterStatus{State: types.ClusterStateTerminated}, berth.ClusterTerminated, ""},
		{"terminating with no reason", &types.ClusterStatus{State: types.ClusterStateTerminating}, berth.ClusterTerminating, ""},
		{"terminated with errors and no reason", &types.ClusterStatus{State: types.ClusterStateTerminatedWithErrors}, berth.ClusterLost, provider.ClassTransient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := clusterState("j-1", tt.status)
			if c.State != tt.state || c.Class != tt.class {
				t.Errorf("got %s (%s), want %s (%s)", c.State, c.Class, tt.state, tt.class)
			}
			if r := tt.status.StateChangeReason; r != nil && aws.ToString(r.Message) != "" && c.State.Terminal() && !strings.Contains(c.Reason, aws.ToString(r.Message)) {
				t.Errorf("reason %q leaves out EMR's message %q", c.Reason, aws.ToString(r.Message))
			}
		})
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name      string
		op        string
		err       error
		class     provider.Class
		throttled bool
		ambiguous bool
	}{
		{"throttled", "RunJobFlow", answer(400, "ThrottlingException", "Rate exceeded"), provider.ClassTransient, true, false},
		{"validation on create", "RunJobFlow", answer(400, "ValidationException", "Invalid InstanceType"), provider.ClassPermanent, false, false},
		{"access denied on create", "RunJobFlow", answer(400, "AccessDeniedException", "not authorized"), provider.ClassPermanent, false, false},
		{"capacity on create", "RunJobFlow", answer(400, "ValidationException", "InsufficientInstanceCapacity in us-east-1a"), provider.ClassCapacity, false, false},
		{"server error", "RunJobFlow", answer(500, "InternalServerError", "oops"), provider.ClassTransient, false, true},
		{"no answer", "DescribeCluster", errors.New("dial tcp: connection refused"), provider.ClassTransient, false, true},
		{"validation elsewhere", "DescribeCluster", answer(400, "ValidationException", "bad"), provider.ClassTransient, false, false},
		{"server error with no EMR error", "CancelSteps", serverPage(500), provider.ClassTransient, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := classify(tt.op, tt.err)
			if got := provider.ClassOf(err); got != tt.class {
				t.Errorf("class %s, want %s (%v)", got, tt.class, err)
			}
			if got := errors.Is(err, berth.ErrThrottled); got != tt.throttled {
				t.Errorf("throttled %v, want %v", got, tt.throttled)
			}
			if got := ambiguous(tt.err); got != tt.ambiguous {
				t.Errorf("ambiguous %v, want %v", got, tt.ambiguous)
			}
			var pe *provider.Error
			if !errors.As(err, &pe) || pe.Message == "" || strings.Contains(pe.Message, "operation error") {
				t.Errorf("no plain message for users: %+v", pe)
			}
		})
	}
}

// serverPage is a 5xx answer whose body is no EMR error (moto's HTML
// page for a call it does not implement), as the SDK returns it.
func serverPage(status int) error {
	return &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
			Err: &smithy.DeserializationError{Err: errors.New("invalid character '<' looking for beginning of value")}},
	}
}

func TestServerErrorWithNoEMRErrorSaysSo(t *testing.T) {
	err := classify("CancelSteps", serverPage(500))
	var pe *provider.Error
	if !errors.As(err, &pe) || pe.Code != "ServerError" || !strings.Contains(pe.Message, "CancelSteps: EMR server error: HTTP 500") {
		t.Errorf("classify = %v, want a ServerError naming the call and its status", err)
	}
}

func TestUnknownCluster(t *testing.T) {
	wrap := func(err error) error {
		return &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: 400}}, Err: err}}
	}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"EMR's words", answer(400, "InvalidRequestException", "Cluster id 'j-X' is not valid."), true},
		{"EMR's typed error", wrap(&types.InvalidRequestException{ErrorCode_: aws.String("NoSuchCluster"), Message: aws.String("Cluster id 'j-X' is not valid.")}), true},
		{"NoSuchCluster in other words", wrap(&types.InvalidRequestException{ErrorCode_: aws.String("NoSuchCluster"), Message: aws.String("no such cluster")}), true},
		{"typed, EMR's words, no code", wrap(&types.InvalidRequestException{Message: aws.String("Cluster id 'j-X' is not valid.")}), true},
		{"not found", answer(400, "ResourceNotFoundException", "Cluster j-X not found"), true},
		{"another invalid request", wrap(&types.InvalidRequestException{ErrorCode_: aws.String("INVALID_STEP"), Message: aws.String("Step is in a bad state")}), false},
		{"throttled", answer(400, "ThrottlingException", "Rate exceeded"), false},
		{"server page", serverPage(500), false},
		{"no answer", errors.New("dial tcp: connection refused"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := unknownCluster(tt.err); got != tt.want {
				t.Errorf("unknownCluster(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestStepError(t *testing.T) {
	for _, msg := range []string{
		"Maximum number of active steps(State = 'Running', 'Pending' or 'Cancel_Pending') for cluster exceeded.",
		"A job flow that is shutting down, terminated, or finished may not be modified.",
	} {
		if err := stepError("AddJobFlowSteps", answer(400, "ValidationException", msg)); !errors.Is(err, provider.ErrNotReady) {
			t.Errorf("%q: %v, want ErrNotReady", msg, err)
		}
	}
	role := stepError("AddJobFlowSteps", answer(400, "ValidationException", "The execution role arn:aws:iam::425612345678:role/terminate-256 is not valid"))
	if !errors.Is(role, berth.ErrInvalid) || errors.Is(role, provider.ErrNotReady) || !strings.Contains(berth.Public(role), "is not valid") {
		t.Errorf("a refused step: %v (public %q), want ErrInvalid with EMR's words", role, berth.Public(role))
	}
	if strings.Contains(role.Error(), "operation error") || strings.Contains(role.Error(), "StatusCode") {
		t.Errorf("a refused step's error carries the SDK's chain: %v", role)
	}
	// Berth's own credentials and permissions, throttling and EMR's
	// servers are never the job's fault.
	for _, err := range []error{
		answer(400, "UnrecognizedClientException", "The security token included in the request is invalid."),
		answer(400, "InvalidSignatureException", "Signature expired"),
		answer(400, "AccessDeniedException", "User: arn:aws:sts::111122223333:assumed-role/berth/i-0 is not authorized to perform: elasticmapreduce:AddJobFlowSteps"),
		answer(400, "ThrottlingException", "Rate exceeded"),
		answer(503, "ServiceUnavailable", ""),
	} {
		if got := stepError("AddJobFlowSteps", err); errors.Is(got, berth.ErrInvalid) {
			t.Errorf("%v is the step's fault: %v", err, got)
		}
	}
	if err := stepError("ListSteps", answer(400, "ValidationException", "bad marker")); errors.Is(err, berth.ErrInvalid) {
		t.Errorf("a failed search is the step's fault: %v", err)
	}
}
