package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/pluto-sched/pluto/internal/store"
)

// The run log endpoint: pages of lines, or a live follow.

func (h *httpAPI) logs(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	q := r.URL.Query()
	var after int64
	afterParam := "after"
	v := q.Get("after")
	if v == "" && q.Get("cursor") != "" {
		afterParam, v = "cursor", q.Get("cursor")
	}
	if v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			writeError(w, badRequest(afterParam, "%s must be a non-negative line number, got %q", afterParam, v))
			return
		}
		after = n
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

// followLogs streams a run's log lines as NDJSON (one log object per line)
// until the run is terminal and every line has been sent, the client goes
// away or the server stops. An error after the stream began is sent as a
// final {"error": {…}} line.
func (h *httpAPI) followLogs(w http.ResponseWriter, r *http.Request, run *store.Run, after int64, limit int) {
	ctx, cancel := h.untilStopping(r.Context())
	defer cancel()
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	fail := func(err error) {
		ae := toAPIError(err)
		_ = enc.Encode(errorJSON{Error: errorBody{Code: ae.Code, Message: ae.Message, Field: ae.Field}})
		_ = rc.Flush()
	}
	terminal := run.Status.Terminal()
	for {
		entries, err := h.eng.Logs(ctx, store.LogListParams{RunID: run.ID, After: after, Limit: limit})
		if err != nil {
			if ctx.Err() == nil {
				fail(err)
			}
			return
		}
		for _, e := range entries {
			if err := enc.Encode(toLogJSON(e)); err != nil {
				return
			}
			after = e.Seq
		}
		if len(entries) > 0 {
			if err := rc.Flush(); err != nil {
				return
			}
		}
		if len(entries) == limit {
			continue
		}
		if terminal || ctx.Err() != nil {
			return
		}
		wctx, wcancel := context.WithTimeout(ctx, followPoll)
		cur, err := h.eng.Wait(wctx, run.ID)
		wcancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			fail(runErr(run.ID, err))
			return
		}
		if cur != nil && cur.Status.Terminal() {
			terminal = true // one more pass collects the last lines
		}
	}
}
