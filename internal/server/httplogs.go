package server

import (
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// The run log endpoint: pages of lines, or a live follow (docs/api.md).
//
// A follow streams Server-Sent Events when the request accepts
// text/event-stream, NDJSON otherwise. It reads the run's lines after the
// last one sent, then waits on the engine's FollowLogs wake channel —
// fired when lines of the run commit on any server, or when it ends — and
// reads again; it ends after the run is terminal and a last read found
// nothing more.

// sseHeartbeat is how often an idle event stream gets a comment line, so
// that proxies keep it open.
const sseHeartbeat = 15 * time.Second

func (h *httpAPI) logs(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	q := r.URL.Query()
	after, err := logsAfter(r)
	if err != nil {
		writeError(w, err)
		return
	}
	limit := defaultLogLimit
	n, err := queryLimit(q.Get("limit"), limit, maxLogLimit)
	if err != nil {
		writeError(w, err)
		return
	}
	limit = n
	follow := false
	if v := q.Get("follow"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeError(w, badRequest("follow", "follow must be a boolean (1, true, 0, false), got %q", v))
			return
		}
		follow = b
	}
	run, err := h.getRun(r.Context(), id)
	if err != nil {
		writeError(w, err)
		return
	}
	if follow {
		h.followLogs(w, r, run, after, limit)
		return
	}
	entries, err := h.eng.Logs(r.Context(), store.LogListParams{RunID: id, After: after, Limit: limit})
	if err != nil {
		writeError(w, runErr(id, err))
		return
	}
	out := listJSON[logJSON]{Items: make([]logJSON, 0, len(entries))}
	for _, e := range entries {
		out.Items = append(out.Items, toLogJSON(e))
	}
	if len(entries) == limit && len(entries) > 0 {
		out.NextCursor = strconv.FormatInt(entries[len(entries)-1].Seq, 10)
	}
	writeJSON(w, http.StatusOK, out)
}

// logsAfter is the line number to start after: the Last-Event-ID header
// of a resuming event stream, else after= (or cursor=), else 0.
func logsAfter(r *http.Request) (int64, error) {
	q := r.URL.Query()
	field, v := "after", q.Get("after")
	if v == "" && q.Get("cursor") != "" {
		field, v = "cursor", q.Get("cursor")
	}
	if ids := r.Header.Values("Last-Event-ID"); len(ids) > 0 {
		field, v = "Last-Event-ID", ids[0]
		if len(ids) > 1 || v == "" {
			return 0, badRequest(field, "Last-Event-ID must be one line number, got %q", strings.Join(ids, ", "))
		}
	}
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, badRequest(field, "%s must be a non-negative line number, got %q", field, clipText(v, 64))
	}
	return n, nil
}

// clipText cuts s for an error message.
func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// acceptsEventStream reports whether an Accept header names
// text/event-stream (with a non-zero quality).
func acceptsEventStream(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil || mt != "text/event-stream" {
			continue
		}
		if q, ok := params["q"]; ok {
			if f, err := strconv.ParseFloat(q, 64); err == nil && f == 0 {
				continue
			}
		}
		return true
	}
	return false
}

// followLogs streams a run's log lines until the run is terminal and every
// line has been sent, the client goes away or the server stops. An error
// after the stream began is sent as a final error event (SSE) or
// {"error": {…}} line (NDJSON).
func (h *httpAPI) followLogs(w http.ResponseWriter, r *http.Request, run *store.Run, after int64, limit int) {
	ctx, cancel := h.untilStopping(r.Context())
	defer cancel()
	wake, stop, err := h.eng.FollowLogs(ctx, run.ID)
	if err != nil {
		writeError(w, runErr(run.ID, err))
		return
	}
	defer stop()
	out := newLogStream(w, acceptsEventStream(r.Header.Get("Accept")))
	var heartbeat <-chan time.Time
	if out.sse {
		t := time.NewTicker(sseHeartbeat)
		defer t.Stop()
		heartbeat = t.C
	}
	terminal := run.Status.Terminal()
	for {
		entries, err := h.eng.Logs(ctx, store.LogListParams{RunID: run.ID, After: after, Limit: limit})
		if err != nil {
			if ctx.Err() == nil {
				out.fail(err)
			}
			return
		}
		for _, e := range entries {
			if err := out.line(e); err != nil {
				return
			}
			after = e.Seq
		}
		if len(entries) > 0 && out.flush() != nil {
			return
		}
		if len(entries) == limit {
			continue
		}
		if terminal {
			out.end(run)
			return
		}
		if !h.awaitLogs(ctx, wake, heartbeat, out) {
			return
		}
		cur, err := h.eng.Get(ctx, run.ID)
		if err != nil {
			if ctx.Err() == nil {
				out.fail(runErr(run.ID, err))
			}
			return
		}
		if cur.Status.Terminal() {
			run, terminal = cur, true // one more pass collects the last lines
		}
	}
}

// awaitLogs waits for the follower's wake, sending heartbeats meanwhile;
// false when the stream must end.
func (h *httpAPI) awaitLogs(ctx context.Context, wake <-chan struct{}, heartbeat <-chan time.Time, out *logStream) bool {
	for {
		select {
		case <-wake:
			return true
		case <-heartbeat:
			if out.heartbeat() != nil {
				return false
			}
		case <-ctx.Done():
			return false
		}
	}
}

// logStream writes a follow's lines as SSE or NDJSON.
type logStream struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	sse bool
	enc *json.Encoder
}

func newLogStream(w http.ResponseWriter, sse bool) *logStream {
	s := &logStream{w: w, rc: http.NewResponseController(w), sse: sse}
	if sse {
		w.Header().Set("Content-Type", "text/event-stream")
	} else {
		w.Header().Set("Content-Type", "application/x-ndjson")
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	_ = s.rc.Flush()
	s.enc = json.NewEncoder(w)
	s.enc.SetEscapeHTML(false)
	return s
}

// line writes one log line: an event with the line's seq as its id, or
// one NDJSON line. JSON never holds a raw newline, so a data field is one
// line.
func (s *logStream) line(e store.LogEntry) error {
	if s.sse {
		if _, err := fmt.Fprintf(s.w, "id: %d\ndata: ", e.Seq); err != nil {
			return err
		}
	}
	if err := s.enc.Encode(toLogJSON(e)); err != nil {
		return err
	}
	if s.sse {
		_, err := s.w.Write([]byte("\n"))
		return err
	}
	return nil
}

func (s *logStream) flush() error { return s.rc.Flush() }

func (s *logStream) heartbeat() error {
	if _, err := s.w.Write([]byte(": keep-alive\n\n")); err != nil {
		return err
	}
	return s.flush()
}

// end tells an event stream that the run ended and every line was sent
// (NDJSON just ends).
func (s *logStream) end(run *store.Run) {
	if !s.sse {
		return
	}
	_, _ = fmt.Fprintf(s.w, "event: end\ndata: ")
	_ = s.enc.Encode(struct {
		Status string `json:"status"`
	}{string(run.Status)})
	_, _ = s.w.Write([]byte("\n"))
	_ = s.flush()
}

// fail sends an error that happened after the stream began.
func (s *logStream) fail(err error) {
	ae := toAPIError(err)
	if s.sse {
		_, _ = fmt.Fprintf(s.w, "event: error\ndata: ")
	}
	_ = s.enc.Encode(errorJSON{Error: errorBody{Code: ae.Code, Message: ae.Message, Field: ae.Field}})
	if s.sse {
		_, _ = s.w.Write([]byte("\n"))
	}
	_ = s.flush()
}
