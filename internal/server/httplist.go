package server

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// list serves GET /api/v1/runs (docs/api.md).
func (h *httpAPI) list(w http.ResponseWriter, r *http.Request) {
	p, err := listParams(r.URL.Query())
	if err != nil {
		writeError(w, err)
		return
	}
	if err := scopeList(r.Context(), &p); err != nil {
		writeError(w, httpAuthError(err))
		return
	}
	page, err := h.eng.List(r.Context(), p)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, listJSON[runJSON]{Items: toRunsJSON(page.Runs), NextCursor: page.NextCursor})
}

// listParams reads a run listing's query parameters; a bad value is a 400
// naming its parameter.
func listParams(q url.Values) (store.RunListParams, error) {
	p := store.RunListParams{
		Group: q.Get("group"), Job: q.Get("job"), Parent: q.Get("parent"), Type: q.Get("type"), WorkerID: q.Get("worker"),
		ErrorContains: q.Get("error"), Cursor: q.Get("cursor"), Limit: defaultListLimit,
	}
	for _, v := range q["status"] {
		for s := range strings.SplitSeq(v, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			st := store.RunStatus(strings.ToLower(s))
			if !st.Valid() {
				return p, badRequest("status", "unknown status %q (want one of %s)", s, statusNames())
			}
			if !slices.Contains(p.Statuses, st) {
				p.Statuses = append(p.Statuses, st)
			}
		}
	}
	limit, err := queryLimit(q.Get("limit"), p.Limit, maxListLimit)
	if err != nil {
		return p, err
	}
	p.Limit = limit
	switch o := q.Get("order"); o {
	case "", "desc":
	case "asc":
		p.Order = store.OrderAsc
	default:
		return p, badRequest("order", "order must be asc or desc, got %q", o)
	}
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{
		{"created_after", &p.CreatedAfter}, {"created_before", &p.CreatedBefore},
		{"finished_after", &p.FinishedAfter}, {"finished_before", &p.FinishedBefore},
	} {
		v := q.Get(t.name)
		if v == "" {
			continue
		}
		tm, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return p, badRequest(t.name, "%s must be an RFC 3339 time (e.g. 2026-01-02T15:04:05Z), got %q", t.name, v)
		}
		*t.dst = tm
	}
	return p, nil
}

// queryLimit parses a limit query parameter: def when empty, else an
// integer from 1 to most (400 naming "limit" otherwise).
func queryLimit(v string, def, most int) (int, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > most {
		return 0, badRequest("limit", "limit must be an integer from 1 to %d, got %q", most, v)
	}
	return n, nil
}
