package emr

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/emr"
	"github.com/aws/aws-sdk-go-v2/service/emr/types"
	"github.com/aws/smithy-go"

	"github.com/berthhq/berth/internal/berth"
	"github.com/berthhq/berth/internal/provider"
)

// EMR's error codes that mean "slow down": the call was refused, not made.
var throttleCodes = map[string]bool{
	"ThrottlingException": true, "Throttling": true, "ThrottledException": true,
	"RequestLimitExceeded": true, "TooManyRequestsException": true,
}

// Codes that mean the request can never work as it is.
var permanentCodes = map[string]bool{
	"ValidationException": true, "InvalidRequestException": true,
	"AccessDeniedException": true, "AccessDenied": true, "UnauthorizedOperation": true,
	"UnrecognizedClientException": true, "InvalidSignatureException": true,
	"InvalidClientTokenId": true, "IncompleteSignature": true,
}

// apiError returns the code and message of an EMR error answer.
func apiError(err error) (code, msg string, ok bool) {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return "", "", false
	}
	return ae.ErrorCode(), ae.ErrorMessage(), true
}

// status is the HTTP status of an error answer, 0 if there was none.
func status(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// throttled reports whether EMR refused a call for its rate.
func throttled(err error) bool {
	code, _, ok := apiError(err)
	return ok && throttleCodes[code]
}

// ambiguous reports whether a failed call may have taken effect: EMR
// gave no answer, or a server error, rather than refusing it.
func ambiguous(err error) bool {
	if throttled(err) || errors.Is(err, ErrLimited) {
		return false
	}
	s := status(err)
	return s == 0 || s >= http.StatusInternalServerError
}

// onlyThrottleRetries lets the SDK retry a call that is not idempotent
// (RunJobFlow, AddJobFlowSteps) only when EMR refused it for its rate: a
// server error or a timeout may follow a cluster started or a step added,
// and the provider finds those by name before it tries again.
func onlyThrottleRetries(o *emr.Options) {
	o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
		so.MaxAttempts = maxAttempts
		so.MaxBackoff = maxBackoff
		so.RateLimiter = ratelimit.None
		so.Retryables = []retry.IsErrorRetryable{retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
			return aws.BoolTernary(throttled(err))
		})}
	})
}

// unknownCluster reports whether EMR says it does not know a cluster id:
// an InvalidRequestException whose own error code is NoSuchCluster (EMR's
// and moto's DescribeCluster), or whose words say so ("Cluster id 'j-X'
// is not valid.").
func unknownCluster(err error) bool {
	code, msg, ok := apiError(err)
	if !ok {
		return false
	}
	var ire *types.InvalidRequestException
	if errors.As(err, &ire) && aws.ToString(ire.ErrorCode_) == "NoSuchCluster" {
		return true
	}
	isInvalid := ire != nil || code == "InvalidRequestException" || code == "ResourceNotFoundException"
	m := strings.ToLower(msg)
	return isInvalid && (strings.Contains(m, "not valid") || strings.Contains(m, "not found") || strings.Contains(m, "does not exist"))
}

// classify turns an error of an EMR call into a provider.Error with its
// class and EMR's code and message, so that policy can tell a throttle
// from a shortage from a spec that can never work, and users read EMR's
// words, not the SDK's chain of wraps.
func classify(op string, err error) error {
	code, msg, ok := apiError(err)
	pe := &provider.Error{Class: provider.ClassTransient, Code: code, Message: msg, Err: err}
	switch {
	case errors.Is(err, ErrLimited):
		pe.Code, pe.Message = "RateLimited", fmt.Sprintf("%s: not sent: Berth's EMR rate limit left no room before the deadline", op)
	case !ok && status(err) >= http.StatusInternalServerError:
		// An answer, but no EMR error: a proxy's or an emulator's page.
		pe.Code, pe.Message = "ServerError", fmt.Sprintf("%s: EMR server error: HTTP %d, with no EMR error in the answer", op, status(err))
	case !ok:
		pe.Code, pe.Message = "Unavailable", fmt.Sprintf("%s: EMR did not answer: %v", op, rootCause(err))
	case throttleCodes[code]:
		pe.Err = fmt.Errorf("%w: %w", berth.ErrThrottled, err)
		pe.Message = fmt.Sprintf("%s: throttled by EMR: %s", op, msg)
	case capacityMessage(msg):
		pe.Class = provider.ClassCapacity
	case permanentCodes[code] && op == "RunJobFlow":
		pe.Class = provider.ClassPermanent
	case status(err) >= http.StatusInternalServerError:
		pe.Message = fmt.Sprintf("%s: EMR server error %s: %s", op, code, msg)
	}
	if pe.Message == "" {
		pe.Message = op + " failed"
	}
	return pe
}

// stepError classifies a failed AddJobFlowSteps or step search (op). Only
// EMR's refusal of the request itself (ValidationException,
// InvalidRequestException: a malformed step, a runtime role EMR will not
// use) is the job's failure; a cluster that is ending or full, by EMR's
// own words, is not ready for it; anything else (credentials, permissions,
// throttling, server errors) is the infrastructure's, classified as for
// any call, and never charged to the job.
func stepError(op string, err error) error {
	code, msg, ok := apiError(err)
	if !ok || (code != "ValidationException" && code != "InvalidRequestException") {
		return classify(op, err)
	}
	m := strings.ToLower(msg)
	switch {
	case unknownCluster(err), strings.Contains(m, "may not be modified"), strings.Contains(m, "maximum number of active steps"):
		return fmt.Errorf("%w: %s", provider.ErrNotReady, msg)
	case op != "AddJobFlowSteps":
		return classify(op, err)
	}
	// The public message is EMR's; the SDK's chain of wraps stays out of
	// what users (and the job's events) read.
	return &berth.Error{Kind: berth.ErrInvalid, Public: "EMR refused the step: " + msg, Op: "emr: AddJobFlowSteps",
		Err: fmt.Errorf("%s: %s", code, msg)}
}

// capacityMessage reports whether EMR's words say it lacks capacity.
func capacityMessage(msg string) bool {
	m := strings.ToLower(msg)
	for _, s := range []string{"insufficient capacity", "insufficientinstancecapacity", "insufficient_capacity",
		"capacity-not-available", "out of capacity", "spot capacity", "instancelimitexceeded", "maxspotinstancecountexceeded",
		"not enough capacity", "no spot capacity"} {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

// rootCause is the innermost error of a chain, the part a user can act on
// ("connection refused"), without the SDK's layers.
func rootCause(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}

// clusterState maps EMR's status of a cluster to Berth's.
//
//   - STARTING, BOOTSTRAPPING: starting. RUNNING, WAITING: ready.
//   - TERMINATING or TERMINATED because a user (Berth) asked, or because
//     auto-termination ended an idle cluster, or with no reason given:
//     terminating, terminated.
//   - Any other end: lost, classed by EMR's reason: a bootstrap failure or
//     a validation error is permanent (the spec can never work); an
//     instance failure (spot reclaim), a fleet timeout or EC2 short of
//     capacity is capacity; an internal error is transient.
func clusterState(id string, s *types.ClusterStatus) provider.Cluster {
	c := provider.Cluster{ID: id, State: berth.ClusterStarting}
	code, msg := types.ClusterStateChangeReasonCode(""), ""
	if r := s.StateChangeReason; r != nil {
		code, msg = r.Code, aws.ToString(r.Message)
	}
	for _, d := range s.ErrorDetails {
		if m := aws.ToString(d.ErrorMessage); m != "" && !strings.Contains(msg, m) {
			msg = strings.TrimSpace(msg + " " + m)
		}
		if capacityMessage(aws.ToString(d.ErrorCode)) {
			msg = strings.TrimSpace(msg + " (" + aws.ToString(d.ErrorCode) + ")")
		}
	}
	reason := string(code)
	if msg != "" {
		reason += ": " + msg
	}
	byUser := code == types.ClusterStateChangeReasonCodeUserRequest || code == types.ClusterStateChangeReasonCodeAllStepsCompleted
	// EMR always says why a cluster ends; moto says nothing. A cluster
	// that ended without errors and without a word of why was not lost.
	silent := code == "" && msg == ""
	if silent {
		reason = "EMR gave no reason"
	}
	switch s.State {
	case types.ClusterStateStarting, types.ClusterStateBootstrapping:
	case types.ClusterStateRunning, types.ClusterStateWaiting:
		c.State = berth.ClusterReady
	case types.ClusterStateTerminating, types.ClusterStateTerminated:
		if byUser || silent || code == types.ClusterStateChangeReasonCodeStepFailure {
			c.State, c.Reason = berth.ClusterTerminated, reason
			if s.State == types.ClusterStateTerminating {
				c.State = berth.ClusterTerminating
			}
			return c
		}
		c.State, c.Reason, c.Class = berth.ClusterLost, reason, lossClass(code, msg)
	case types.ClusterStateTerminatedWithErrors:
		c.State, c.Reason, c.Class = berth.ClusterLost, reason, lossClass(code, msg)
	default:
		c.Reason = "unknown EMR state " + string(s.State)
	}
	return c
}

// lossClass is what a cluster's end means for policy.
func lossClass(code types.ClusterStateChangeReasonCode, msg string) provider.Class {
	switch {
	case capacityMessage(msg), code == types.ClusterStateChangeReasonCodeInstanceFleetTimeout,
		code == types.ClusterStateChangeReasonCodeInstanceFailure:
		return provider.ClassCapacity
	case code == types.ClusterStateChangeReasonCodeBootstrapFailure, code == types.ClusterStateChangeReasonCodeValidationError:
		return provider.ClassPermanent
	}
	return provider.ClassTransient
}
