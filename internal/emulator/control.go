package emulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// serveControl answers the control endpoints (see the package comment):
// the faults a user scripts with curl, and the emulator's counts.
func (e *Emulator) serveControl(w http.ResponseWriter, r *http.Request) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /emulator/stats", e.controlStats)
	mux.HandleFunc("POST /emulator/spot-loss", control(func(in struct {
		ClusterID string `json:"cluster_id"`
	}) error {
		return e.SpotLoss(in.ClusterID)
	}))
	mux.HandleFunc("POST /emulator/instance-failure", control(func(in struct {
		ClusterID string `json:"cluster_id"`
		Survive   bool   `json:"survive"`
	}) error {
		return e.InstanceFailure(in.ClusterID, in.Survive)
	}))
	mux.HandleFunc("POST /emulator/fail-bootstraps", control(func(in struct {
		N int `json:"n"`
	}) error {
		e.FailBootstraps(in.N)
		return nil
	}))
	mux.HandleFunc("POST /emulator/fail-capacity", control(func(in struct {
		N int `json:"n"`
	}) error {
		e.FailCapacity(in.N)
		return nil
	}))
	mux.HandleFunc("POST /emulator/fail-calls", control(func(in struct {
		Operation string `json:"operation"`
		Code      string `json:"code"`
		Message   string `json:"message"`
		Status    int    `json:"status"`
		N         int    `json:"n"`
	}) error {
		if in.Operation == "" || in.Code == "" {
			return errBadControl("operation and code are required")
		}
		if in.Status != 0 && (in.Status < 400 || in.Status > 599) {
			return errBadControl(fmt.Sprintf("status %d: want 400..599", in.Status))
		}
		e.FailCalls(in.Operation, in.Code, in.Message, in.Status, in.N)
		return nil
	}))
	mux.HandleFunc("POST /emulator/drop-replies", control(func(in struct {
		Operation string `json:"operation"`
		N         int    `json:"n"`
	}) error {
		if in.Operation == "" {
			return errBadControl("operation is required")
		}
		e.DropReplies(in.Operation, in.N)
		return nil
	}))
	mux.HandleFunc("POST /emulator/latency", control(func(in struct {
		Operation string `json:"operation"`
		Latency   string `json:"latency"`
	}) error {
		d, err := time.ParseDuration(in.Latency)
		if in.Operation == "" || err != nil || d < 0 {
			return errBadControl(`operation is required, and latency a duration such as "2s"`)
		}
		e.SetLatency(in.Operation, d)
		return nil
	}))
	mux.HandleFunc("POST /emulator/throttle", control(func(in struct {
		Enabled bool `json:"enabled"`
	}) error {
		e.SetThrottle(in.Enabled)
		return nil
	}))
	mux.ServeHTTP(w, r)
}

// Stats is what GET /emulator/stats answers.
type Stats struct {
	Calls     map[string]int `json:"calls"`
	Throttled int            `json:"throttled"`
	Clusters  []Cluster      `json:"clusters"`
}

func (e *Emulator) controlStats(w http.ResponseWriter, r *http.Request) {
	writeControl(w, http.StatusOK, Stats{Calls: e.Calls(), Throttled: e.Throttled(), Clusters: e.Snapshot()})
}

type badControl string

func (b badControl) Error() string { return string(b) }

func errBadControl(msg string) error { return badControl(msg) }

// control makes a handler of fn over a JSON body of type In, strictly
// decoded so that a misspelt field is an error rather than ignored.
func control[In any](fn func(In) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var in In
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			writeControl(w, http.StatusBadRequest, map[string]string{"error": "the body is not valid: " + err.Error()})
			return
		}
		if err := fn(in); err != nil {
			status := http.StatusConflict
			var bad badControl
			switch {
			case errors.As(err, &bad):
				status = http.StatusBadRequest
			case errors.Is(err, ErrNoCluster):
				status = http.StatusNotFound
			}
			writeControl(w, status, map[string]string{"error": err.Error()})
			return
		}
		writeControl(w, http.StatusOK, map[string]bool{"ok": true})
	}
}

func writeControl(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
