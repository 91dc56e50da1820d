package server

// The HTTP JSON API (docs/api.md), a thin adapter over Engine:
//
//	POST /api/v1/runs                 submit one run ({…}) or a batch ({"runs": […]})
//	GET  /api/v1/runs                 list (status, group, job, limit, cursor)
//	GET  /api/v1/runs/{id}            one run
//	POST /api/v1/runs/{id}/cancel     cancel ({"reason"} optional)
//	POST /api/v1/runs/{id}/retry      retry a terminal run that did not succeed
//	GET  /api/v1/runs/{id}/wait       long-poll until terminal (?timeout=30s, max 5m)
//	GET  /api/v1/runs/{id}/logs       log lines (?after=SEQ&limit=N; ?follow=1 streams NDJSON)
//	GET  /api/v1/runs/{id}/attempts   the run's attempts, earlier ones and the current one
//	GET  /api/v1/workers              connected workers
//	GET, POST /api/v1/workers/{id}[/drain|resume|shutdown|restart|command],
//	POST /api/v1/groups/{group}/command   remote control (httpworkers.go)
//	PUT, GET, DELETE /api/v1/jobs/{name}, GET /api/v1/jobs,
//	POST /api/v1/jobs/{name}/{pause|resume|trigger}   jobs (httpjobs.go)
//	GET  /healthz, GET /readyz
//
// Lists answer {"items": […], "next_cursor": "…"}; next_cursor is omitted
// when there is no further page. Errors answer
// {"error": {"code", "message", "field"}} with the matching status.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/pluto-sched/pluto/internal/apijson"
	"github.com/pluto-sched/pluto/internal/engine"
	"github.com/pluto-sched/pluto/internal/store"
)

// Limits of the HTTP API.
const (
	// DefaultMaxPayload is the default cap of one run's payload.
	DefaultMaxPayload = 1 << 20
	// bodySlack is what a request body may hold beyond MaxPayload: the
	// envelope (type, group, key, …) around the payload.
	bodySlack = 64 << 10
	// maxBatch is the most runs one POST /runs may carry.
	maxBatch = 1000
	// maxSmallBody caps bodies that carry no payload (cancel).
	maxSmallBody = 64 << 10

	defaultListLimit = 100
	maxListLimit     = 1000
	defaultLogLimit  = 1000
	maxLogLimit      = 10000

	defaultWaitTimeout = 30 * time.Second
	maxWaitTimeout     = 5 * time.Minute
)

// HTTPOptions configures the HTTP API.
type HTTPOptions struct {
	// MaxPayload is the largest accepted run payload in bytes (413 above).
	// Default 1 MiB.
	MaxPayload int64
	// MaxBody caps a POST /runs body (413 above). Default MaxPayload + 64 KiB,
	// which also bounds a whole batch.
	MaxBody   int64
	ServerID  string
	StoreName string
	// Logger receives handler panics and internal errors. Default slog.Default().
	Logger *slog.Logger
	// Stopping, when closed, ends long polls (wait, log follow) early so a
	// graceful HTTP shutdown does not sit behind them; a wait answers with
	// the run as it is.
	Stopping <-chan struct{}
	// Auth, if set, authenticates every call but the health checks (nil:
	// every call is an unlimited admin's; tests of other parts).
	Auth *authenticator
	// Audit, if set, records every state-changing call.
	Audit *auditLog
	// Tokens, if set, serves the token and audit routes.
	Tokens *tokenAdmin
	// Metrics, if set, serves GET /metrics (Prometheus).
	Metrics http.Handler

	// limit, if set, is the live max payload (Server.Reconfigure changes
	// it); it overrides MaxPayload.
	limit *payloadLimit
	// guard, if set, is the browser-safety check (httpguard.go); default:
	// the checks with nothing more allowed.
	guard *guard
	// peers, if set, asks the other servers of a cluster (default
	// peerHTTP); it carries the CAs they are trusted by (tls.go).
	peers *http.Client
}

type httpAPI struct {
	eng       Engine
	opts      HTTPOptions
	log       *slog.Logger
	mux       *http.ServeMux
	limit     *payloadLimit
	fixedBody int64 // MaxBody as given; 0: follows the max payload
	guard     *guard
	auth      *authenticator
	audit     *auditLog
}

func (h *httpAPI) maxPayload() int64 { return h.limit.get() }

func (h *httpAPI) maxBody() int64 {
	if h.fixedBody > 0 {
		return h.fixedBody
	}
	return h.maxPayload() + bodySlack
}

// newHTTPHandler serves /api/v1, /healthz and /readyz.
func newHTTPHandler(eng Engine, opts HTTPOptions) http.Handler {
	if opts.MaxPayload <= 0 {
		opts.MaxPayload = DefaultMaxPayload
	}
	fixedBody := opts.MaxBody
	if opts.MaxBody <= 0 {
		opts.MaxBody = opts.MaxPayload + bodySlack
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	limit := opts.limit
	if limit == nil {
		limit = newPayloadLimit(opts.MaxPayload)
	}
	g := opts.guard
	if g == nil {
		g, _ = newGuard(guardOptions{}) // nothing to parse: cannot fail
	}
	h := &httpAPI{eng: eng, opts: opts, log: opts.Logger, mux: http.NewServeMux(), limit: limit, fixedBody: fixedBody, guard: g,
		auth: opts.Auth, audit: opts.Audit}
	for _, rt := range h.routes() {
		h.mux.HandleFunc(rt.pattern, h.authorized(rt))
	}
	return h
}

// ServeHTTP routes the request, answering unknown paths and wrong methods
// with the JSON error envelope, and turns a handler panic into a 500.
func (h *httpAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tw := &trackingWriter{ResponseWriter: w}
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			h.log.Error("http handler panic", "method", r.Method, "path", r.URL.Path, "panic", p, "stack", string(debug.Stack()))
			if !tw.wrote {
				writeError(tw, &apiError{Status: http.StatusInternalServerError, Code: codeInternal, Message: "internal error"})
			}
		}
	}()
	if r.URL.Path != "/healthz" && r.URL.Path != "/readyz" {
		if err := h.guard.check(r); err != nil {
			writeError(tw, err)
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = newTimedBody(r.Body, http.NewResponseController(w), h.guard.bodyWait)
		}
	}
	if _, pattern := h.mux.Handler(r); pattern == "" {
		h.unrouted(tw, r)
		return
	}
	h.mux.ServeHTTP(tw, r)
}

// unrouted answers a request no pattern took: 404, 405 (with Allow) or the
// mux's redirect for an unclean path.
func (h *httpAPI) unrouted(w http.ResponseWriter, r *http.Request) {
	handler, _ := h.mux.Handler(r)
	c := &captureWriter{header: make(http.Header)}
	handler.ServeHTTP(c, r)
	switch c.status {
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", c.header.Get("Allow"))
		writeError(w, &apiError{Status: http.StatusMethodNotAllowed, Code: codeMethodNotAllowed,
			Message: fmt.Sprintf("method %s not allowed on %s (allowed: %s)", r.Method, r.URL.Path, c.header.Get("Allow"))})
	case http.StatusNotFound, 0:
		writeError(w, notFound("no such endpoint: %s %s", r.Method, r.URL.Path))
	default:
		// A redirect (unclean path): pass it through as the mux wrote it.
		for k, v := range c.header {
			w.Header()[k] = v
		}
		w.WriteHeader(c.status)
		_, _ = w.Write(c.body.Bytes())
	}
}

// ---- runs ----

// submitRequest is one run in a POST /runs body.
type submitRequest struct {
	Type       string          `json:"type"`
	Group      string          `json:"group"`
	Payload    json.RawMessage `json:"payload"`
	Priority   int             `json:"priority"`
	Delay      string          `json:"delay"`
	RunAt      string          `json:"run_at"`
	Timeout    string          `json:"timeout"`
	Retries    int             `json:"retries"`
	Key        string          `json:"key"`
	Routing    string          `json:"routing"`
	RoutingKey string          `json:"routing_key"`
	// CallbackURL receives the run's outcome when it ends (feedback).
	CallbackURL string `json:"callback_url"`
	// Fan-out: shards children with the payload each, or one per part;
	// min_success of them must succeed (a count, or a fraction in (0, 1));
	// merge is the handler type that merges their results.
	Shards     int               `json:"shards"`
	Parts      []json.RawMessage `json:"parts"`
	MinSuccess float64           `json:"min_success"`
	Merge      string            `json:"merge"`
}

func (h *httpAPI) submit(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r, h.maxBody())
	if err != nil {
		writeError(w, err)
		return
	}
	if len(bytes.TrimSpace(body)) == 0 {
		writeError(w, badJSON("request body is empty; want a JSON object describing a run"))
		return
	}
	if err := checkJSON(body); err != nil {
		writeError(w, err)
		return
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil || top == nil {
		writeError(w, badJSON("request body must be a JSON object, got %s", apijson.KindOf(body)))
		return
	}

	runsRaw, batch := top["runs"]
	var elems []json.RawMessage
	if batch {
		for k := range top {
			if k != "runs" {
				writeError(w, badRequest(k, "unknown field %q: a batch body holds only \"runs\"", k))
				return
			}
		}
		if err := json.Unmarshal(runsRaw, &elems); err != nil {
			writeError(w, badRequest("runs", "runs must be an array of run objects, got %s", apijson.KindOf(runsRaw)))
			return
		}
		if len(elems) == 0 {
			writeError(w, badRequest("runs", "runs is empty"))
			return
		}
		if len(elems) > maxBatch {
			writeError(w, badRequest("runs", "a batch holds at most %d runs, got %d", maxBatch, len(elems)))
			return
		}
	} else {
		elems = []json.RawMessage{body}
	}

	specs := make([]engine.SubmitSpec, len(elems))
	for i, raw := range elems {
		prefix := ""
		if batch {
			prefix = fmt.Sprintf("runs[%d].", i)
		}
		spec, err := h.decodeSpec(raw, prefix)
		if err != nil {
			writeError(w, err)
			return
		}
		specs[i] = spec
	}
	if err := checkSpecs(r.Context(), specs); err != nil {
		writeError(w, httpAuthError(err))
		return
	}

	res, err := h.eng.Submit(r.Context(), specs)
	if err != nil {
		writeError(w, err)
		return
	}
	if len(res) != len(specs) {
		h.log.Error("engine submit returned a wrong number of results", "want", len(specs), "got", len(res))
		writeError(w, fmt.Errorf("engine returned %d results for %d runs", len(res), len(specs)))
		return
	}
	for _, sr := range res {
		if sr.Run == nil {
			writeError(w, errors.New("engine returned a result without a run"))
			return
		}
	}
	if batch {
		items := make([]runJSON, len(res))
		for i, sr := range res {
			items[i] = toRunJSON(sr.Run)
		}
		writeJSON(w, http.StatusCreated, listJSON[runJSON]{Items: items})
		return
	}
	status := http.StatusCreated
	if res[0].Existing {
		status = http.StatusOK
	}
	w.Header().Set("Location", "/api/v1/runs/"+res[0].Run.ID)
	writeJSON(w, status, toRunJSON(res[0].Run))
}

// decodeSpec decodes and checks one run object; field names in errors are
// prefixed with prefix ("runs[3]." in a batch).
func (h *httpAPI) decodeSpec(raw json.RawMessage, prefix string) (engine.SubmitSpec, error) {
	var req submitRequest
	if len(bytes.TrimSpace(raw)) == 0 || bytes.TrimSpace(raw)[0] != '{' {
		field := strings.TrimSuffix(prefix, ".")
		if field == "" {
			return engine.SubmitSpec{}, badJSON("request body must be a JSON object, got %s", apijson.KindOf(raw))
		}
		return engine.SubmitSpec{}, badRequest(field, "each run must be a JSON object, got %s", apijson.KindOf(raw))
	}
	if err := decodeStrict(raw, &req); err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.Field != "" {
			ae.Field = prefix + ae.Field
		}
		return engine.SubmitSpec{}, err
	}
	spec := engine.SubmitSpec{
		Type:        strings.TrimSpace(req.Type),
		Group:       strings.TrimSpace(req.Group),
		Priority:    req.Priority,
		Retries:     req.Retries,
		Key:         req.Key,
		Routing:     req.Routing,
		RoutingKey:  req.RoutingKey,
		CallbackURL: req.CallbackURL,
		Shards:      req.Shards,
		Parts:       req.Parts,
		MinSuccess:  req.MinSuccess,
		Merge:       strings.TrimSpace(req.Merge),
	}
	if spec.Type == "" {
		return spec, badRequest(prefix+"type", "type is required (the handler type a worker registered, e.g. \"shell\")")
	}
	if spec.Group == "" {
		return spec, badRequest(prefix+"group", "group is required (the worker group that runs it, e.g. \"default\")")
	}
	if p := bytes.TrimSpace(req.Payload); len(p) > 0 && !bytes.Equal(p, []byte("null")) {
		var buf bytes.Buffer
		if err := json.Compact(&buf, p); err != nil { // cannot happen: the body was valid
			return spec, badRequest(prefix+"payload", "payload is not valid JSON: %v", err)
		}
		if limit := h.maxPayload(); int64(buf.Len()) > limit {
			return spec, tooLarge(prefix+"payload", "payload is %d bytes; the limit is %d", buf.Len(), limit)
		}
		spec.Payload = json.RawMessage(buf.Bytes())
	}
	if req.Delay != "" {
		d, err := parseDuration(req.Delay)
		if err != nil {
			return spec, badRequest(prefix+"delay", "delay %q is not a duration (want e.g. \"30s\", \"5m\"): %v", req.Delay, err)
		}
		if d < 0 {
			return spec, badRequest(prefix+"delay", "delay must not be negative, got %q", req.Delay)
		}
		spec.Delay = d
	}
	if req.RunAt != "" {
		if req.Delay != "" {
			return spec, badRequest(prefix+"run_at", "give either delay or run_at, not both")
		}
		t, err := time.Parse(time.RFC3339Nano, req.RunAt)
		if err != nil {
			return spec, badRequest(prefix+"run_at", "run_at %q is not an RFC 3339 time (want e.g. \"2026-11-21T08:00:00Z\")", req.RunAt)
		}
		spec.RunAt = t
	}
	if req.Timeout != "" {
		d, err := parseDuration(req.Timeout)
		if err != nil {
			return spec, badRequest(prefix+"timeout", "timeout %q is not a duration (want e.g. \"5m\"): %v", req.Timeout, err)
		}
		if d < 0 {
			return spec, badRequest(prefix+"timeout", "timeout must not be negative, got %q", req.Timeout)
		}
		spec.Timeout = d
	}
	if req.Retries < 0 {
		return spec, badRequest(prefix+"retries", "retries must not be negative, got %d", req.Retries)
	}
	return spec, nil
}

func (h *httpAPI) get(w http.ResponseWriter, r *http.Request) {
	run, err := h.getRun(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	out := toRunJSON(run)
	stats, err := h.eng.LogStats(r.Context(), run.ID)
	if err != nil {
		writeError(w, runErr(run.ID, err))
		return
	}
	out.LogLinesDropped = stats.Dropped
	if store.IsFanoutParent(run) {
		fo, err := h.eng.Fanout(r.Context(), run.ID)
		if err != nil {
			writeError(w, runErr(run.ID, err))
			return
		}
		out.Fanout = apijson.FromFanout(fo)
	}
	writeJSON(w, http.StatusOK, out)
}

// getRun gets a run, turning a missing one into a 404 that names it.
func (h *httpAPI) getRun(ctx context.Context, id string) (*store.Run, error) {
	run, err := h.eng.Get(ctx, id)
	if err != nil {
		return nil, runErr(id, err)
	}
	if run == nil {
		return nil, notFound("run %s not found", id)
	}
	return run, nil
}

// runErr names the run in a not-found error.
func runErr(id string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return notFound("run %s not found", id)
	}
	return err
}

func (h *httpAPI) cancel(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	body, err := readBody(w, r, maxSmallBody)
	if err != nil {
		writeError(w, err)
		return
	}
	var req struct {
		Reason string `json:"reason"`
	}
	if len(bytes.TrimSpace(body)) > 0 {
		if err := checkJSON(body); err != nil {
			writeError(w, err)
			return
		}
		if bytes.TrimSpace(body)[0] != '{' {
			writeError(w, badJSON("request body must be a JSON object, got %s", apijson.KindOf(body)))
			return
		}
		if err := decodeStrict(body, &req); err != nil {
			writeError(w, err)
			return
		}
	}
	run, err := h.eng.Cancel(r.Context(), id, req.Reason)
	if err != nil {
		writeError(w, runErr(id, err))
		return
	}
	writeJSON(w, http.StatusOK, toRunJSON(run))
}

func (h *httpAPI) retry(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	run, err := h.eng.Retry(r.Context(), id)
	if err != nil {
		if errors.Is(err, store.ErrConflict) {
			err = &apiError{Status: http.StatusConflict, Code: codeConflict,
				Message: fmt.Sprintf("run %s cannot be retried: only a finished run that did not succeed can (%v)", id, err)}
		}
		writeError(w, runErr(id, err))
		return
	}
	writeJSON(w, http.StatusOK, toRunJSON(run))
}

func (h *httpAPI) wait(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	timeout := defaultWaitTimeout
	if v := r.URL.Query().Get("timeout"); v != "" {
		d, err := parseDuration(v)
		if err != nil || d < 0 || d > maxWaitTimeout {
			writeError(w, badRequest("timeout", "timeout must be a duration from 0s to %s, got %q", formatDuration(maxWaitTimeout), v))
			return
		}
		timeout = d
	}
	if timeout == 0 {
		h.get(w, r)
		return
	}
	ctx, cancel := h.untilStopping(r.Context())
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, timeout)
	defer cancelT()
	run, err := h.eng.Wait(ctx, id)
	if err != nil {
		if r.Context().Err() != nil {
			return // the client went away
		}
		if ctx.Err() == nil || !errors.Is(err, ctx.Err()) {
			writeError(w, runErr(id, err))
			return
		}
		// Timed out (or the server is stopping): answer with the run as it is.
		if run == nil {
			if run, err = h.getRun(r.Context(), id); err != nil {
				writeError(w, err)
				return
			}
		}
	}
	if run == nil {
		writeError(w, notFound("run %s not found", id))
		return
	}
	writeJSON(w, http.StatusOK, toRunJSON(run))
}

// ---- workers, health ----

// workers lists the workers of every live server (each asked with
// ?local=1), or with ?local=1 this server's only.
func (h *httpAPI) workers(w http.ResponseWriter, r *http.Request) {
	items := make([]workerJSON, 0)
	pr := principal(r.Context())
	for _, wi := range h.eng.Workers() {
		if pr.AllowsGroup(wi.Group) {
			items = append(items, toWorkerJSON(wi))
		}
	}
	var unreachable []apijson.UnreachableServer
	if !local(r) {
		var others []workerJSON
		others, unreachable = h.peerWorkers(r.Context(), r)
		items = mergeWorkers(items, others)
	}
	slices.SortFunc(items, func(a, b workerJSON) int {
		if c := strings.Compare(a.Group, b.Group); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	writeJSON(w, http.StatusOK, workersJSON{Items: items, Unreachable: unreachable})
}

func (h *httpAPI) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, statusJSON{Status: "ok"})
}

func (h *httpAPI) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if err := h.eng.Ready(ctx); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, statusJSON{Status: "unavailable",
			Error: &errorBody{Code: codeUnavailable, Message: err.Error()}})
		return
	}
	writeJSON(w, http.StatusOK, statusJSON{Status: "ok"})
}

// ---- helpers ----

// untilStopping derives a context that also ends when the server stops.
func (h *httpAPI) untilStopping(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	if h.opts.Stopping != nil {
		go func() {
			select {
			case <-h.opts.Stopping:
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	return ctx, cancel
}

// trackingWriter remembers whether a response was started.
type trackingWriter struct {
	http.ResponseWriter
	wrote  bool
	status int // the first status written (audit)
}

func (t *trackingWriter) WriteHeader(code int) {
	if !t.wrote {
		t.status = code
	}
	t.wrote = true
	t.ResponseWriter.WriteHeader(code)
}

func (t *trackingWriter) Write(b []byte) (int, error) {
	if !t.wrote {
		t.status = http.StatusOK
	}
	t.wrote = true
	return t.ResponseWriter.Write(b)
}

func (t *trackingWriter) Flush() {
	if f, ok := t.ResponseWriter.(http.Flusher); ok {
		t.wrote = true
		f.Flush()
	}
}

func (t *trackingWriter) Unwrap() http.ResponseWriter { return t.ResponseWriter }

// captureWriter records what the mux's own 404/405/redirect handlers write.
type captureWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (c *captureWriter) Header() http.Header { return c.header }
func (c *captureWriter) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
	}
}
func (c *captureWriter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	return c.body.Write(b)
}
