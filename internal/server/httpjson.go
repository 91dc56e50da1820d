package server

import (
	"bytes"
	"encoding/json"
	"net/http"

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

// JSON shapes of the HTTP API (docs/api.md). Field names are part of the
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
	cpu, mem := make([]float64, len(w.Loads)), make([]uint64, len(w.Loads))
	for i, l := range w.Loads {
		cpu[i], mem[i] = l.CPU, l.MemBytes
	}
	return workerJSON{
		CPUHistory:    cpu,
		MemHistory:    mem,
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

// The API's value formats, shared with the CLI and the feedback deliverer.
var (
	optString      = apijson.OptString
	formatTime     = apijson.FormatTime
	optTime        = apijson.OptTime
	formatDuration = apijson.FormatDuration
	optDuration    = apijson.OptDuration
	rawJSON        = apijson.RawJSON
)

// writeJSON writes v with the given status.
// jsonAppender is a value that encodes itself exactly as encoding/json
// would, faster (apijson.Stats).
type jsonAppender interface {
	AppendJSON(b []byte) []byte
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if a, ok := v.(jsonAppender); ok {
		buf.Write(append(a.AppendJSON(make([]byte, 0, 64<<10)), '\n'))
	} else if err := enc.Encode(v); err != nil {
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
