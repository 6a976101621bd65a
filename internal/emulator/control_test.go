package emulator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/emr"
	"github.com/aws/aws-sdk-go-v2/service/emr/types"

	"github.com/berthhq/berth/internal/emulator"
)

// post sends body to a control endpoint and returns the status and answer.
func (h *harness) post(t *testing.T, path, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(h.url+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The control endpoints script the faults over HTTP, as a person does
// with curl, and refuse what they cannot do with a reason.
func TestControlEndpoints(t *testing.T) {
	h := newHarness(t, emulator.Options{})
	id := h.ready(t, input("c", 1))
	tests := []struct {
		path, body string
		status     int
		answer     string
	}{
		{"/emulator/fail-bootstraps", `{"n": 1}`, 200, `{"ok":true}`},
		{"/emulator/fail-capacity", `{"n": 0}`, 200, `{"ok":true}`},
		{"/emulator/fail-calls", `{"operation": "ListSteps", "code": "AccessDeniedException", "message": "no", "status": 400, "n": 1}`, 200, `{"ok":true}`},
		{"/emulator/drop-replies", `{"operation": "AddJobFlowSteps", "n": 1}`, 200, `{"ok":true}`},
		{"/emulator/latency", `{"operation": "ListClusters", "latency": "0s"}`, 200, `{"ok":true}`},
		{"/emulator/throttle", `{"enabled": false}`, 200, `{"ok":true}`},
		{"/emulator/instance-failure", `{"cluster_id": "` + id + `", "survive": true}`, 200, `{"ok":true}`},
		{"/emulator/spot-loss", `{"cluster_id": "j-NOSUCHCLUSTER"}`, 404, "no such cluster"},
		{"/emulator/spot-loss", `{"cluster": "` + id + `"}`, 400, `unknown field \"cluster\"`},
		{"/emulator/fail-calls", `{"operation": "ListSteps"}`, 400, "code are required"},
		{"/emulator/fail-calls", `{"operation": "ListSteps", "code": "X", "status": 200}`, 400, "want 400..599"},
		{"/emulator/latency", `{"operation": "ListSteps", "latency": "soon"}`, 400, "a duration"},
		{"/emulator/frobnicate", `{}`, 404, ""},
	}
	for _, tt := range tests {
		status, answer := h.post(t, tt.path, tt.body)
		if status != tt.status || !strings.Contains(answer, tt.answer) {
			t.Errorf("POST %s %s: %d %s, want %d with %q", tt.path, tt.body, status, answer, tt.status, tt.answer)
		}
	}

	ctx := context.Background()
	_, err := h.emr.ListSteps(ctx, &emr.ListStepsInput{ClusterId: &id})
	wantAPIError(t, err, "AccessDeniedException", "no")
	_, err = h.emr.AddJobFlowSteps(ctx, &emr.AddJobFlowStepsInput{JobFlowId: &id, Steps: []types.StepConfig{jar("j")}})
	if code, _, status := apiError(t, err); code != "InternalFailure" || status != 500 {
		t.Errorf("AddJobFlowSteps with its reply dropped: %s %d", code, status)
	}
	next := h.start(t, input("next", 1))
	h.advance(emulator.DefaultBootTime, emulator.DefaultBootstrapTime)
	if c := h.cluster(t, next); c.Status.StateChangeReason == nil || c.Status.StateChangeReason.Code != types.ClusterStateChangeReasonCodeBootstrapFailure {
		t.Errorf("cluster after fail-bootstraps: %s %+v", c.Status.State, c.Status.StateChangeReason)
	}
	if status, answer := h.post(t, "/emulator/spot-loss", `{"cluster_id": "`+next+`"}`); status != 409 || !strings.Contains(answer, "already ending") {
		t.Errorf("spot-loss of an ending cluster: %d %s", status, answer)
	}

	resp, err := http.Get(h.url + "/emulator/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var stats emulator.Stats
	if err := json.NewDecoder(resp.Body).Decode(&stats); err != nil {
		t.Fatal(err)
	}
	// The step whose reply was dropped was added, and ran.
	if stats.Calls["RunJobFlow"] != 2 || stats.Calls["ListSteps"] != 1 || len(stats.Clusters) != 2 || stats.Clusters[0].ID != id ||
		len(stats.Clusters[0].Steps) != 1 || stats.Clusters[0].Steps[0].State != emulator.StepCompleted {
		var b bytes.Buffer
		_ = json.NewEncoder(&b).Encode(stats)
		t.Errorf("stats: %s", b.String())
	}
}
