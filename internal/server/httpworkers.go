package server

// Remote control of workers (docs/api.md), a thin adapter over the engine
// (internal/engine/control_workers.go has the semantics):
//
//	GET  /api/v1/workers/{id}              one worker
//	POST /api/v1/workers/{id}/drain        take no new runs, finish the held ones (200, the worker)
//	POST /api/v1/workers/{id}/resume       take runs again (200, the worker)
//	POST /api/v1/workers/{id}/shutdown     drain, then exit (202, the worker)
//	POST /api/v1/workers/{id}/restart      drain, then start again (202, the worker)
//	POST /api/v1/workers/{id}/command      {"name","args","timeout"} → {"items":[reply]}
//	POST /api/v1/groups/{group}/command    the same for every worker of the group
//
// A worker is connected to one server. In a cluster (PostgreSQL) a server
// asked about a worker it does not have asks the other live servers of the
// cluster listing (GET /api/v1/workers/{id}?local=1 on each) and answers
// 307 Temporary Redirect to the same path on the server that has it, with
// ?local=1 so that server answers by itself; HTTP clients (the CLI, curl
// -L) follow it with the same method and body. A group command is asked of
// every live server (?local=1) and the replies are merged; servers that do
// not answer are listed in "unreachable". ?local=1 on any of these routes
// means: this server only.
//
// Per-worker outcomes of a command are in its items, never in the status:
// 200 even when a worker's handler failed, did not answer within the
// timeout (error "timeout"), disconnected meanwhile, or does not know the
// command. The status is for the request: 400 bad body (field named), 404
// no such worker (or no worker of the group) on any server, 409 the
// worker's stream is closed (it is suspect) or it is shutting down, 503
// server stopping.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pluto-sched/pluto/internal/apijson"
	"github.com/pluto-sched/pluto/internal/engine"
	"github.com/pluto-sched/pluto/internal/store"
)

// workerControl is the remote control of workers; *engine.Engine
// implements it. It is separate from Engine so that engines without it
// (test fakes) need not: the control routes are then not served.
type workerControl interface {
	DrainWorker(id string, resume bool) (engine.WorkerInfo, error)
	ShutdownWorker(id string, restart bool) (engine.WorkerInfo, error)
	WorkerCommand(ctx context.Context, id, name string, args json.RawMessage, timeout time.Duration) (engine.CommandReply, error)
	GroupCommand(ctx context.Context, group, name string, args json.RawMessage, timeout time.Duration) ([]engine.CommandReply, error)
}

var _ workerControl = (*engine.Engine)(nil)

const (
	// peerLookupTimeout bounds asking another server whether it has a worker.
	peerLookupTimeout = 3 * time.Second
	// peerSlack is what a forwarded group command may take beyond its
	// timeout (the other server's own round trips).
	peerSlack = 5 * time.Second
)

// peerHTTP asks the other servers of a cluster. No keep-alive: these calls
// are rare, and no idle connection outlives them.
var peerHTTP = &http.Client{
	Transport: &http.Transport{
		DialContext:       (&net.Dialer{Timeout: peerLookupTimeout}).DialContext,
		DisableKeepAlives: true,
	},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

type (
	commandJSON        = apijson.Command
	commandReplyJSON   = apijson.CommandReply
	commandRepliesJSON = apijson.CommandReplies
)

// local reports whether the request asks for this server only.
func local(r *http.Request) bool { return r.URL.Query().Get("local") != "" }

func (h *httpAPI) getWorker(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	for _, wi := range h.eng.Workers() {
		if wi.ID == id {
			writeJSON(w, http.StatusOK, toWorkerJSON(wi))
			return
		}
	}
	h.elsewhere(w, r, id, fmt.Errorf("no worker %q is connected to server %s: %w", id, h.opts.ServerID, store.ErrNotFound))
}

// workerAction serves drain, resume, shutdown and restart.
func (h *httpAPI) workerAction(ctl workerControl, action string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := h.readObject(w, r, "an empty JSON object, or nothing", false)
		if err == nil && body != nil {
			err = decodeStrict(body, &struct{}{})
		}
		if err != nil {
			writeError(w, err)
			return
		}
		id := r.PathValue("id")
		var info engine.WorkerInfo
		status := http.StatusOK
		switch action {
		case "drain", "resume":
			info, err = ctl.DrainWorker(id, action == "resume")
		default:
			info, err = ctl.ShutdownWorker(id, action == "restart")
			status = http.StatusAccepted
		}
		if err != nil {
			h.elsewhere(w, r, id, err)
			return
		}
		writeJSON(w, status, toWorkerJSON(info))
	}
}

func (h *httpAPI) workerCommand(ctl workerControl, w http.ResponseWriter, r *http.Request) {
	cmd, err := h.readCommand(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	id := r.PathValue("id")
	ctx, cancel := h.untilStopping(r.Context())
	defer cancel()
	rep, err := ctl.WorkerCommand(ctx, id, cmd.name, cmd.args, cmd.timeout)
	if err != nil {
		h.elsewhere(w, r, id, err)
		return
	}
	writeJSON(w, http.StatusOK, commandRepliesJSON{Items: []commandReplyJSON{toCommandReplyJSON(rep)}})
}

func (h *httpAPI) groupCommand(ctl workerControl, w http.ResponseWriter, r *http.Request) {
	cmd, err := h.readCommand(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	group := r.PathValue("group")
	ctx, cancel := h.untilStopping(r.Context())
	defer cancel()

	var (
		mu          sync.Mutex
		items       []commandReplyJSON
		unreachable []apijson.UnreachableServer
		wg          sync.WaitGroup
	)
	if !local(r) {
		body, _ := json.Marshal(commandJSON{Name: cmd.name, Args: cmd.args, Timeout: cmd.timeout.String()})
		for _, p := range h.peers(ctx) {
			wg.Go(func() {
				got, err := h.askPeer(ctx, r, p, http.MethodPost, "/api/v1/groups/"+url.PathEscape(group)+"/command", body, cmd.timeout+peerSlack)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err != nil:
					unreachable = append(unreachable, apijson.UnreachableServer{Server: p.ID, HTTP: p.HTTP, Error: err.Error()})
				case got.status == http.StatusOK:
					var reps commandRepliesJSON
					if err := json.Unmarshal(got.body, &reps); err != nil {
						unreachable = append(unreachable, apijson.UnreachableServer{Server: p.ID, HTTP: p.HTTP, Error: "bad answer: " + err.Error()})
						return
					}
					items = append(items, reps.Items...)
				case got.status == http.StatusNotFound: // none of the group there
				default:
					unreachable = append(unreachable, apijson.UnreachableServer{Server: p.ID, HTTP: p.HTTP, Error: got.message()})
				}
			})
		}
	}
	reps, err := ctl.GroupCommand(ctx, group, cmd.name, cmd.args, cmd.timeout)
	wg.Wait()
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		writeError(w, controlError(err))
		return
	}
	for _, rep := range reps {
		items = append(items, toCommandReplyJSON(rep))
	}
	if len(items) == 0 {
		msg := fmt.Sprintf("no worker of group %q is connected", group)
		if !local(r) {
			msg += " to any server"
		}
		writeError(w, notFound("%s%s", msg, unreachableNote(unreachable)))
		return
	}
	slices.SortFunc(items, func(a, b commandReplyJSON) int {
		if c := strings.Compare(a.Worker, b.Worker); c != 0 {
			return c
		}
		return strings.Compare(a.Server, b.Server)
	})
	slices.SortFunc(unreachable, func(a, b apijson.UnreachableServer) int { return strings.Compare(a.Server, b.Server) })
	writeJSON(w, http.StatusOK, commandRepliesJSON{Items: items, Unreachable: unreachable})
}

// command is a validated command request.
type command struct {
	name    string
	args    json.RawMessage
	timeout time.Duration
}

func (h *httpAPI) readCommand(w http.ResponseWriter, r *http.Request) (command, error) {
	body, err := h.readObject(w, r, `a JSON object {"name": …, "args": …, "timeout": …}`, true)
	if err != nil {
		return command{}, err
	}
	var in commandJSON
	if err := decodeStrict(body, &in); err != nil {
		return command{}, err
	}
	c := command{name: strings.TrimSpace(in.Name), timeout: engine.DefaultCommandTimeout}
	if c.name == "" {
		return c, badRequest("name", "name is required: the command to send (e.g. \"ping\")")
	}
	if in.Timeout != "" {
		d, err := parseDuration(in.Timeout)
		switch {
		case err != nil:
			return c, badRequest("timeout", "timeout %q is not a duration (want e.g. \"5s\"): %v", in.Timeout, err)
		case d <= 0:
			return c, badRequest("timeout", "timeout must be positive, got %q", in.Timeout)
		case d > engine.MaxCommandTimeout:
			return c, badRequest("timeout", "timeout must be at most %s, got %q", formatDuration(engine.MaxCommandTimeout), in.Timeout)
		}
		c.timeout = d
	}
	if c.args, err = h.compactPayload("args", in.Args); err != nil {
		return c, err
	}
	return c, nil
}

func toCommandReplyJSON(r engine.CommandReply) commandReplyJSON {
	out := commandReplyJSON{Worker: r.Worker, Server: r.Server, OK: r.OK(), Error: r.Error}
	if out.OK {
		out.Result = rawJSON(r.Result)
		if out.Result == nil {
			out.Result = json.RawMessage("null")
		}
	}
	return out
}

// controlError maps the engine's remote-control errors to statuses.
func controlError(err error) error {
	if errors.Is(err, engine.ErrWorkerDisconnected) || errors.Is(err, engine.ErrWorkerLeaving) {
		return &apiError{Status: http.StatusConflict, Code: codeConflict, Message: err.Error()}
	}
	return err
}

// elsewhere answers a request about a worker this server could not serve
// (err): when another live server of the cluster has it, with a 307 to
// the same path there; otherwise with err.
func (h *httpAPI) elsewhere(w http.ResponseWriter, r *http.Request, id string, err error) {
	if local(r) || !(errors.Is(err, store.ErrNotFound) || errors.Is(err, engine.ErrWorkerDisconnected)) {
		writeError(w, controlError(err))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), peerLookupTimeout+time.Second)
	defer cancel()
	peer, unreachable := h.findWorker(ctx, r, id)
	if peer == nil {
		if errors.Is(err, store.ErrNotFound) {
			err = fmt.Errorf("no worker %q is connected to any server%s: %w", id, unreachableNote(unreachable), store.ErrNotFound)
		}
		writeError(w, controlError(err))
		return
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	q := r.URL.Query()
	q.Set("local", "1")
	loc := (&url.URL{Scheme: scheme, Host: peer.HTTP, Path: r.URL.Path, RawQuery: q.Encode()}).String()
	w.Header().Set("Location", loc)
	writeJSON(w, http.StatusTemporaryRedirect, redirectJSON{
		Message:  fmt.Sprintf("worker %s is connected to server %s (%s://%s)", id, peer.ID, scheme, peer.HTTP),
		Server:   peer.ID,
		Location: loc,
	})
}

// redirectJSON is the body of a 307 to the server a worker is connected to.
type redirectJSON struct {
	Message  string `json:"message"`
	Server   string `json:"server"`
	Location string `json:"location"`
}

func unreachableNote(us []apijson.UnreachableServer) string {
	if len(us) == 0 {
		return ""
	}
	ids := make([]string, len(us))
	for i, u := range us {
		ids[i] = u.Server
	}
	slices.Sort(ids)
	return fmt.Sprintf(" (server %s did not answer)", strings.Join(ids, ", "))
}

// peers are the other live servers of the cluster (none on SQLite).
func (h *httpAPI) peers(ctx context.Context) []engine.ServerStatus {
	info, err := h.eng.Cluster(ctx)
	if err != nil {
		h.log.Warn("remote control: cannot list the cluster's servers", "err", err)
		return nil
	}
	var out []engine.ServerStatus
	for _, s := range info.Servers {
		if s.Alive && s.ID != h.opts.ServerID && s.HTTP != "" {
			out = append(out, s)
		}
	}
	return out
}

// findWorker asks every other live server whether the worker is connected
// there; a server where its stream is up wins over one where it is
// suspect.
func (h *httpAPI) findWorker(ctx context.Context, r *http.Request, id string) (*engine.ServerStatus, []apijson.UnreachableServer) {
	var (
		mu          sync.Mutex
		found       *engine.ServerStatus
		foundState  string
		unreachable []apijson.UnreachableServer
		wg          sync.WaitGroup
	)
	for _, p := range h.peers(ctx) {
		wg.Go(func() {
			got, err := h.askPeer(ctx, r, p, http.MethodGet, "/api/v1/workers/"+url.PathEscape(id), nil, peerLookupTimeout)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				unreachable = append(unreachable, apijson.UnreachableServer{Server: p.ID, HTTP: p.HTTP, Error: err.Error()})
				return
			}
			if got.status != http.StatusOK {
				return
			}
			var wk apijson.Worker
			if json.Unmarshal(got.body, &wk) != nil || wk.ID != id {
				return
			}
			if found == nil || (foundState != string(engine.WorkerAlive) && wk.State == string(engine.WorkerAlive)) {
				found, foundState = &p, wk.State
			}
		})
	}
	wg.Wait()
	return found, unreachable
}

type peerAnswer struct {
	status int
	body   []byte
}

// message is the error message of a non-2xx answer.
func (a peerAnswer) message() string {
	var e errorJSON
	if json.Unmarshal(a.body, &e) == nil && e.Error.Message != "" {
		return fmt.Sprintf("HTTP %d: %s", a.status, e.Error.Message)
	}
	return fmt.Sprintf("HTTP %d", a.status)
}

// askPeer sends a request to another server with ?local=1, passing on the
// caller's credentials.
func (h *httpAPI) askPeer(ctx context.Context, orig *http.Request, p engine.ServerStatus, method, path string, body []byte, timeout time.Duration) (peerAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	u := url.URL{Scheme: "http", Host: p.HTTP, Path: path, RawQuery: "local=1"}
	if orig.TLS != nil {
		u.Scheme = "https"
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return peerAnswer{}, err
	}
	if body != nil || method != http.MethodGet {
		req.Header.Set("Content-Type", "application/json")
	}
	if a := orig.Header.Get("Authorization"); a != "" {
		req.Header.Set("Authorization", a)
	}
	req.Header.Set("User-Agent", "pluto-server")
	hc := h.opts.peers
	if hc == nil {
		hc = peerHTTP
	}
	res, err := hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return peerAnswer{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return peerAnswer{}, err
	}
	return peerAnswer{status: res.StatusCode, body: b}, nil
}

// workersJSON is the worker listing: every live server's workers, and the
// servers that did not answer.
type workersJSON struct {
	Items       []workerJSON                `json:"items"`
	Unreachable []apijson.UnreachableServer `json:"unreachable,omitempty"`
}

// peerWorkers asks every other live server for its workers.
func (h *httpAPI) peerWorkers(ctx context.Context, r *http.Request) ([]workerJSON, []apijson.UnreachableServer) {
	var (
		mu          sync.Mutex
		items       []workerJSON
		unreachable []apijson.UnreachableServer
		wg          sync.WaitGroup
	)
	for _, p := range h.peers(ctx) {
		wg.Go(func() {
			got, err := h.askPeer(ctx, r, p, http.MethodGet, "/api/v1/workers", nil, peerLookupTimeout)
			mu.Lock()
			defer mu.Unlock()
			if err == nil && got.status != http.StatusOK {
				err = errors.New(got.message())
			}
			var list workersJSON
			if err == nil {
				if err = json.Unmarshal(got.body, &list); err != nil {
					err = fmt.Errorf("bad answer: %w", err)
				}
			}
			if err != nil {
				unreachable = append(unreachable, apijson.UnreachableServer{Server: p.ID, HTTP: p.HTTP, Error: err.Error()})
				return
			}
			items = append(items, list.Items...)
		})
	}
	wg.Wait()
	slices.SortFunc(unreachable, func(a, b apijson.UnreachableServer) int { return strings.Compare(a.Server, b.Server) })
	return items, unreachable
}

// mergeWorkers adds others to mine, one entry per worker id: a worker that
// moved may still have a suspect session on the server it left, and the
// alive one (else the one heard from last) is the one that counts.
func mergeWorkers(mine, others []workerJSON) []workerJSON {
	at := make(map[string]int, len(mine)+len(others))
	out := make([]workerJSON, 0, len(mine)+len(others))
	for _, w := range append(mine, others...) {
		i, seen := at[w.ID]
		switch {
		case !seen:
			at[w.ID] = len(out)
			out = append(out, w)
		case betterWorker(w, out[i]):
			out[i] = w
		}
	}
	return out
}

func betterWorker(a, b workerJSON) bool {
	aliveA, aliveB := a.State == string(engine.WorkerAlive), b.State == string(engine.WorkerAlive)
	if aliveA != aliveB {
		return aliveA
	}
	return heard(a).After(heard(b))
}

func heard(w workerJSON) time.Time {
	if w.LastHeartbeat == nil {
		return time.Time{}
	}
	t, _ := time.Parse(time.RFC3339Nano, *w.LastHeartbeat)
	return t
}
