package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/pluto-sched/pluto/internal/apijson"
	"github.com/pluto-sched/pluto/internal/engine"
	"github.com/pluto-sched/pluto/internal/store"
)

// The API's JSON shapes live in internal/apijson, shared with the CLI.
type (
	runJSON         = apijson.Run
	workerJSON      = apijson.Worker
	logJSON         = apijson.LogLine
	listJSON[T any] = apijson.List[T]
	errorJSON       = apijson.Error
	errorBody       = apijson.ErrorBody
)

// JSON shapes of the HTTP API (DESIGN §12). Field names are part of the
// contract: the CLI, the console and user scripts read them.

// statusJSON is the body of /healthz and /readyz.
type statusJSON struct {
	Status string     `json:"status"`
	Error  *errorBody `json:"error,omitempty"`
}

func toRunJSON(r *store.Run) runJSON { return apijson.FromRun(r) }

func toRunsJSON(runs []*store.Run) []runJSON {
	out := make([]runJSON, 0, len(runs))
	for _, r := range runs {
		if r != nil {
			out = append(out, toRunJSON(r))
		}
	}
	return out
}

func toWorkerJSON(w engine.WorkerInfo) workerJSON {
	handlers := w.Handlers
	if handlers == nil {
		handlers = []string{}
	}
	commands := w.Commands
	if commands == nil {
		commands = []string{}
	}
	return workerJSON{
		ID:            w.ID,
		Group:         w.Group,
		State:         string(w.State),
		Capacity:      w.Capacity,
		Running:       w.Running,
		CPU:           w.CPU,
		MemBytes:      w.MemBytes,
		Handlers:      handlers,
		Version:       w.Version,
		ConnectedAt:   optTime(w.ConnectedAt),
		LastHeartbeat: optTime(w.LastHeartbeat),
		Server:        w.Server,
		Draining:      w.Draining,
		Leaving:       w.Leaving,
		Commands:      commands,
	}
}

func toLogJSON(e store.LogEntry) logJSON {
	return logJSON{
		Seq:     e.Seq,
		Time:    optTime(e.Time),
		Stream:  e.Stream,
		Level:   e.Level,
		Text:    e.Text,
		Attempt: e.Attempt,
	}
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// formatTime is the API's time format: RFC 3339 in UTC with as many
// fractional digits as needed.
func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func optTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := formatTime(t)
	return &s
}

// formatDuration is a Go duration string without trailing zero units:
// "30m" rather than "30m0s", "1h" rather than "1h0m0s".
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

func optDuration(d time.Duration) *string {
	if d == 0 {
		return nil
	}
	s := formatDuration(d)
	return &s
}

// rawJSON makes stored JSON safe to embed: empty becomes null, and bytes
// that are not valid JSON (which a correct store never holds) become a JSON
// string rather than corrupting the response.
func rawJSON(b json.RawMessage) json.RawMessage {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	if !json.Valid(b) {
		s, _ := json.Marshal(string(b))
		return s
	}
	return b
}

// writeJSON writes v with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only a bug gets here (every shape above marshals); answer with a
		// well-formed error rather than half a document.
		buf.Reset()
		_ = json.NewEncoder(&buf).Encode(errorJSON{Error: errorBody{Code: codeInternal, Message: "encoding response: " + err.Error()}})
		status = http.StatusInternalServerError
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
