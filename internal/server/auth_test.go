package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/pluto-sched/pluto/internal/auth"
	plutov1 "github.com/pluto-sched/pluto/internal/gen/pluto/v1"
)

// authEnv is a server with authentication on and one token per role.
type authEnv struct {
	t      *testing.T
	srv    *Server
	admin  string
	tokens map[string]string // by name
}

func startAuthServer(t *testing.T, store string) (*Server, string, string) {
	t.Helper()
	if store == "" {
		store = "sqlite:" + filepath.Join(t.TempDir(), "pluto.db")
	}
	var out bytes.Buffer
	file := filepath.Join(t.TempDir(), "admin.token")
	srv, err := Start(context.Background(), Config{
		Store: store, HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0",
		Logger: slog.New(slog.DiscardHandler),
		Auth:   AuthConfig{AdminTokenFile: file, BootstrapOut: &out},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop(context.Background()) })
	return srv, out.String(), file
}

func newAuthEnv(t *testing.T) *authEnv {
	srv, printed, file := startAuthServer(t, "")
	m := regexp.MustCompile(`admin token: (plt_\w+)`).FindStringSubmatch(printed)
	if m == nil {
		t.Fatalf("no admin token printed at bootstrap: %q", printed)
	}
	b, err := os.ReadFile(file)
	if err != nil || strings.TrimSpace(string(b)) != m[1] {
		t.Fatalf("admin token file: %q, %v; want the printed token", b, err)
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin token file mode %v, want 0600", fi.Mode().Perm())
	}
	en := &authEnv{t: t, srv: srv, admin: m[1], tokens: map[string]string{}}
	for _, tk := range []struct{ name, role, groups string }{
		{"ops", "operator", ""}, {"view", "viewer", ""}, {"cli", "client", ""}, {"wrk", "worker", ""},
		{"mailer", "client", "mailers"}, {"reports-worker", "worker", "reports"},
	} {
		en.tokens[tk.name] = en.createToken(tk.name, tk.role, tk.groups, "")
	}
	return en
}

func (en *authEnv) createToken(name, role, groups, expires string) string {
	en.t.Helper()
	req := map[string]any{"name": name, "role": role}
	if groups != "" {
		req["groups"] = strings.Split(groups, ",")
	}
	if expires != "" {
		req["expires"] = expires
	}
	st, body := en.do(en.admin, "POST", "/api/v1/tokens", mustJSON(req))
	if st != http.StatusCreated {
		en.t.Fatalf("create token %s: %d %s", name, st, body)
	}
	var out struct {
		Name, Role, Token string
		Groups            []string
		ExpiresAt         *string `json:"expires_at"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.Name != name || out.Role != role || !auth.ValidSecret(out.Token) {
		en.t.Fatalf("create token %s: %s (%v)", name, body, err)
	}
	return out.Token
}

func (en *authEnv) do(token, method, path, body string) (int, []byte) {
	en.t.Helper()
	req, err := http.NewRequest(method, en.srv.HTTPURL()+path, strings.NewReader(body))
	if err != nil {
		en.t.Fatal(err)
	}
	setJSON(req)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		en.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// routePath fills a pattern's path values with something.
func routePath(pattern string) (method, path string) {
	method, path, _ = strings.Cut(pattern, " ")
	r := strings.NewReplacer("{id}", "r_none", "{name}", "none", "{group}", "g")
	return method, r.Replace(path)
}

// Every route of the table declares a permission, answers 401 without a
// token or with a bad one, and 403 to a token whose role lacks it; health
// answers anyone. The test is driven by the table: a route added without
// a permission, or one that forgets to check, fails here.
func TestEveryRouteAuthenticatesAndAuthorizes(t *testing.T) {
	en := newAuthEnv(t)
	api := en.srv.httpSrv.Handler.(*site).api.(*httpAPI)
	roles := map[auth.Role]string{auth.RoleViewer: en.tokens["view"], auth.RoleClient: en.tokens["cli"],
		auth.RoleWorker: en.tokens["wrk"], auth.RoleOperator: en.tokens["ops"]}
	for _, rt := range api.routes() {
		method, path := routePath(rt.pattern)
		body := "{}"
		if rt.perm == permOpen {
			if path != "/healthz" && path != "/readyz" {
				t.Errorf("%s: no permission declared", rt.pattern)
			}
			if st, b := en.do("", method, path, ""); st != http.StatusOK {
				t.Errorf("%s without a token: %d %s, want 200", rt.pattern, st, b)
			}
			continue
		}
		for _, tok := range []string{"", "plt_" + strings.Repeat("x", 43), "garbage"} {
			st, b := en.do(tok, method, path, body)
			if st != http.StatusUnauthorized || !bytes.Contains(b, []byte(`"code":"unauthenticated"`)) {
				t.Errorf("%s with token %q: %d %s, want 401 unauthenticated", rt.pattern, tok, st, b)
			}
		}
		// The roles' reach, as documented: a worker token calls no HTTP
		// route; a viewer reads everything but tokens and the audit log.
		if rt.perm == auth.PermWorkerStream || (rt.action == "" && method == "GET" && !strings.Contains(path, "/tokens") && !strings.Contains(path, "/audit") && rt.perm != auth.PermRead) {
			t.Errorf("%s: declared %s, want read for a read, never worker-stream", rt.pattern, rt.perm)
		}
		denied := 0
		for role, tok := range roles {
			if role.Allows(rt.perm) {
				if st, b := en.do(tok, method, path, body); st == http.StatusUnauthorized || st == http.StatusForbidden {
					t.Errorf("%s as %s: %d %s; the role has %s", rt.pattern, role, st, b, rt.perm)
				}
				continue
			}
			denied++
			st, b := en.do(tok, method, path, body)
			if st != http.StatusForbidden || !bytes.Contains(b, []byte(`"code":"forbidden"`)) {
				t.Errorf("%s as %s: %d %s, want 403 forbidden", rt.pattern, role, st, b)
			}
		}
		if denied == 0 {
			t.Errorf("%s: every role may call it; no 403 was tested", rt.pattern)
		}
		if st, b := en.do(en.admin, method, path, body); st == http.StatusUnauthorized || st == http.StatusForbidden {
			t.Errorf("%s as admin: %d %s", rt.pattern, st, b)
		}
	}
}

// The bars, one by one.
func TestRolesAndGroups(t *testing.T) {
	en := newAuthEnv(t)
	api := en.srv.httpSrv.Handler.(*site).api.(*httpAPI)
	for _, rt := range api.routes() {
		if rt.action == "" {
			continue
		}
		method, path := routePath(rt.pattern)
		if st, b := en.do(en.tokens["view"], method, path, "{}"); st != http.StatusForbidden {
			t.Errorf("viewer %s: %d %s, want 403 on every write", rt.pattern, st, b)
		}
	}
	if st, b := en.do(en.tokens["wrk"], "GET", "/api/v1/runs", ""); st != http.StatusForbidden {
		t.Errorf("worker token on the HTTP API: %d %s", st, b)
	}
	run := `{"type":"t","group":"mailers"}`
	if st, b := en.do(en.tokens["mailer"], "POST", "/api/v1/runs", run); st != http.StatusCreated {
		t.Fatalf("mailers client submits to mailers: %d %s", st, b)
	}
	if st, b := en.do(en.tokens["mailer"], "POST", "/api/v1/runs", `{"type":"t","group":"billing"}`); st != http.StatusForbidden {
		t.Errorf("mailers client submits to billing: %d %s, want 403", st, b)
	}
	if st, b := en.do(en.tokens["mailer"], "POST", "/api/v1/runs", `{"runs":[{"type":"t","group":"mailers"},{"type":"t","group":"billing"}]}`); st != http.StatusForbidden {
		t.Errorf("mailers client submits a batch reaching billing: %d %s, want 403", st, b)
	}
	st, b := en.do(en.admin, "POST", "/api/v1/runs", `{"type":"t","group":"billing"}`)
	if st != http.StatusCreated {
		t.Fatalf("admin submit: %d %s", st, b)
	}
	var billing struct{ ID string }
	_ = json.Unmarshal(b, &billing)
	for _, c := range []struct{ method, path string }{
		{"GET", "/api/v1/runs/" + billing.ID}, {"POST", "/api/v1/runs/" + billing.ID + "/cancel"},
		{"GET", "/api/v1/runs?group=billing"}, {"GET", "/api/v1/runs/" + billing.ID + "/logs"},
		{"GET", "/api/v1/runs/" + billing.ID + "/attempts"},
	} {
		if st, b := en.do(en.tokens["mailer"], c.method, c.path, ""); st != http.StatusForbidden {
			t.Errorf("mailers client %s %s: %d %s, want 403", c.method, c.path, st, b)
		}
	}
	st, b = en.do(en.tokens["mailer"], "GET", "/api/v1/runs", "")
	if st != http.StatusOK || bytes.Contains(b, []byte("billing")) {
		t.Errorf("mailers client lists runs: %d %s; want only mailers", st, b)
	}
	if st, b := en.do(en.tokens["mailer"], "POST", "/api/v1/tokens", `{"name":"x","role":"admin"}`); st != http.StatusForbidden {
		t.Errorf("a group-limited token creates tokens: %d %s", st, b)
	}
}

func TestRevokedAndExpiredTokensAreRefused(t *testing.T) {
	en := newAuthEnv(t)
	tok := en.tokens["view"]
	if st, _ := en.do(tok, "GET", "/api/v1/runs", ""); st != http.StatusOK {
		t.Fatalf("viewer before revoke: %d", st)
	}
	if st, b := en.do(en.admin, "DELETE", "/api/v1/tokens/view", ""); st != http.StatusOK || !bytes.Contains(b, []byte(`"revoked_at":"`)) {
		t.Fatalf("revoke: %d %s", st, b)
	}
	if st, _ := en.do(tok, "GET", "/api/v1/runs", ""); st != http.StatusUnauthorized {
		t.Fatalf("viewer right after revoke: %d, want 401", st)
	}
	if st, _ := en.do(en.admin, "DELETE", "/api/v1/tokens/nobody", ""); st != http.StatusNotFound {
		t.Errorf("revoke unknown: %d, want 404", st)
	}
	short := en.createToken("short", "viewer", "", "1s")
	if st, _ := en.do(short, "GET", "/api/v1/runs", ""); st != http.StatusOK {
		t.Fatalf("fresh short-lived token: %d", st)
	}
	time.Sleep(1100 * time.Millisecond)
	if st, _ := en.do(short, "GET", "/api/v1/runs", ""); st != http.StatusUnauthorized {
		t.Fatalf("expired token: %d, want 401", st)
	}
	st, b := en.do(en.admin, "GET", "/api/v1/tokens", "")
	if st != http.StatusOK || bytes.Contains(b, []byte("plt_")) || !bytes.Contains(b, []byte(`"name":"view"`)) {
		t.Fatalf("token list: %d %s (must list tokens, never secrets)", st, b)
	}
	for _, bad := range []string{`{"name":"x","role":"root"}`, `{"name":"","role":"viewer"}`, `{"name":"x","role":"viewer","expires":"soon"}`, `{"name":"ops","role":"viewer"}`} {
		if st, b := en.do(en.admin, "POST", "/api/v1/tokens", bad); st != http.StatusBadRequest && st != http.StatusConflict {
			t.Errorf("create %s: %d %s, want 400 or 409", bad, st, b)
		}
	}
}

// Only the first start against an empty store prints a token.
func TestBootstrapOnlyOnce(t *testing.T) {
	db := "sqlite:" + filepath.Join(t.TempDir(), "pluto.db")
	srv, printed, _ := startAuthServer(t, db)
	if !strings.Contains(printed, "admin token: plt_") {
		t.Fatalf("first start printed %q", printed)
	}
	if err := srv.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, printed, file := startAuthServer(t, db)
	if printed != "" {
		t.Fatalf("second start printed %q", printed)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("second start wrote a token file: %v", err)
	}
}

func TestStateChangesAreAudited(t *testing.T) {
	en := newAuthEnv(t)
	en.do(en.tokens["cli"], "POST", "/api/v1/runs", `{"type":"t","group":"g"}`)
	en.do(en.tokens["view"], "POST", "/api/v1/runs/r_x/cancel", "")
	var page struct {
		Items []struct{ Actor, Action, Target, Outcome string }
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, b := en.do(en.admin, "GET", "/api/v1/audit?limit=100", "")
		if st != http.StatusOK {
			t.Fatalf("audit: %d %s", st, b)
		}
		_ = json.Unmarshal(b, &page)
		got := map[string]string{}
		for _, e := range page.Items {
			got[e.Actor+" "+e.Action] = e.Outcome
		}
		if got["cli run.submit"] == "ok" && got["view run.cancel"] == "denied" && got["admin token.create"] == "ok" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit entries %+v; want cli's submit ok, view's cancel denied, admin's token.create", page.Items)
		}
		time.Sleep(50 * time.Millisecond)
	}
	st, b := en.do(en.admin, "GET", "/api/v1/audit?actor=cli&since=2000-01-01T00:00:00Z", "")
	if st != http.StatusOK || !bytes.Contains(b, []byte(`"actor":"cli"`)) || bytes.Contains(b, []byte(`"actor":"view"`)) {
		t.Fatalf("audit by actor: %d %s", st, b)
	}
	if st, _ := en.do(en.admin, "GET", "/api/v1/audit?since=yesterday", ""); st != http.StatusBadRequest {
		t.Errorf("bad since: %d, want 400", st)
	}
}

// gRPC: the client service and the worker stream check the token, its
// role and, for a worker, the group it joins.
func TestGRPCAuth(t *testing.T) {
	en := newAuthEnv(t)
	conn, err := grpc.NewClient(en.srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cli := plutov1.NewClientServiceClient(conn)
	as := func(tok string) context.Context {
		ctx := context.Background()
		if tok != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
		}
		return ctx
	}
	submit := func(tok, group string) codes.Code {
		_, err := cli.Submit(as(tok), &plutov1.SubmitRequest{Runs: []*plutov1.RunSpec{{Type: "t", Group: group}}})
		return status.Code(err)
	}
	for _, c := range []struct {
		tok, group string
		want       codes.Code
	}{
		{"", "g", codes.Unauthenticated}, {"plt_bad", "g", codes.Unauthenticated},
		{en.tokens["wrk"], "g", codes.PermissionDenied}, {en.tokens["view"], "g", codes.PermissionDenied},
		{en.tokens["mailer"], "billing", codes.PermissionDenied}, {en.tokens["mailer"], "mailers", codes.OK},
		{en.tokens["cli"], "g", codes.OK},
	} {
		if got := submit(c.tok, c.group); got != c.want {
			t.Errorf("submit to %s: %v, want %v", c.group, got, c.want)
		}
	}
	wk := plutov1.NewWorkerServiceClient(conn)
	hello := func(tok, group string) codes.Code {
		ctx, cancel := context.WithTimeout(as(tok), 5*time.Second)
		defer cancel()
		st, err := wk.Connect(ctx)
		if err != nil {
			return status.Code(err)
		}
		_ = st.Send(&plutov1.WorkerMessage{Msg: &plutov1.WorkerMessage_Hello{Hello: &plutov1.Hello{WorkerId: "w-" + group, Group: group, Capacity: 1, HandlerTypes: []string{"t"}}}})
		_, err = st.Recv()
		return status.Code(err)
	}
	for _, c := range []struct {
		tok, group string
		want       codes.Code
	}{
		{"", "reports", codes.Unauthenticated}, {en.tokens["cli"], "reports", codes.PermissionDenied},
		{en.tokens["reports-worker"], "payments", codes.PermissionDenied},
		{en.tokens["reports-worker"], "reports", codes.OK}, {en.tokens["wrk"], "payments", codes.OK},
	} {
		if got := hello(c.tok, c.group); got != c.want {
			t.Errorf("worker joining %s: %v, want %v", c.group, got, c.want)
		}
	}
}

// FuzzAuthorizationHeader: whatever a client puts in the Authorization
// header, the answer is a 401 (or, for the real token, a 200) — never a
// panic, a 5xx or a call let through.
func FuzzAuthorizationHeader(f *testing.F) {
	st, err := OpenStore(context.Background(), "sqlite:"+filepath.Join(f.TempDir(), "pluto.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatal(err)
	}
	defer st.Close()
	secret, _, err := auth.Bootstrap(context.Background(), st, "admin", time.Now())
	if err != nil {
		f.Fatal(err)
	}
	v := auth.NewVerifier(st, auth.VerifierOptions{})
	h := newHTTPHandler(newHTTPFake(), HTTPOptions{Logger: slog.New(slog.DiscardHandler), Auth: &authenticator{v: v}})
	for _, seed := range []string{"Bearer " + secret, "Bearer plt_abc", "bearer " + strings.Repeat("x", 300), "Basic dXNlcjpwYXNz",
		"Bearer  " + secret, "Bearer " + secret + "\x00", "Bearer " + strings.ToUpper(secret), ""} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, header string) {
		req := httptest.NewRequest(http.MethodGet, "/api/v1/runs", nil)
		req.Host = "localhost"
		req.Header["Authorization"] = []string{header}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		want := http.StatusUnauthorized
		if p, err := auth.ParseBearer(header); err == nil && p == secret {
			want = http.StatusOK
		}
		if rec.Code != want {
			t.Fatalf("Authorization %q: %d %s, want %d", header, rec.Code, rec.Body, want)
		}
	})
}

// A token revoked on one server is refused by another sharing the store
// within a second, even one that verified it a moment before (and so
// holds it in its cache).
func TestRevocationReachesEveryServer(t *testing.T) {
	pg := ctlPostgres(t)
	s1, printed, _ := startAuthServer(t, pg)
	s2, _, _ := startAuthServer(t, pg)
	m := regexp.MustCompile(`admin token: (plt_\w+)`).FindStringSubmatch(printed)
	if m == nil {
		t.Fatalf("no admin token printed: %q", printed)
	}
	en1 := &authEnv{t: t, srv: s1, admin: m[1]}
	en2 := &authEnv{t: t, srv: s2, admin: m[1]}
	tok := en1.createToken("roaming", "viewer", "", "")
	if st, b := en2.do(tok, "GET", "/api/v1/runs", ""); st != http.StatusOK {
		t.Fatalf("the other server before revoke: %d %s", st, b)
	}
	if st, b := en1.do(en1.admin, "DELETE", "/api/v1/tokens/roaming", ""); st != http.StatusOK {
		t.Fatalf("revoke: %d %s", st, b)
	}
	revoked := time.Now()
	for {
		st, _ := en2.do(tok, "GET", "/api/v1/runs", "")
		if st == http.StatusUnauthorized {
			break
		}
		if time.Since(revoked) > time.Second {
			t.Fatalf("the other server still accepts the revoked token after %v (status %d)", time.Since(revoked), st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("refused by the other server %v after the revoke", time.Since(revoked).Round(time.Millisecond))
}

// A worker stream lives no longer than its token: revoking the token ends
// the stream at once, and the stream of a token that expires ends then.
func TestWorkerStreamEndsWithItsToken(t *testing.T) {
	en := newAuthEnv(t)
	conn, err := grpc.NewClient(en.srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	wk := plutov1.NewWorkerServiceClient(conn)
	open := func(tok, id string) plutov1.WorkerService_ConnectClient {
		ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok)
		st, err := wk.Connect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_ = st.Send(&plutov1.WorkerMessage{Msg: &plutov1.WorkerMessage_Hello{Hello: &plutov1.Hello{WorkerId: id, Group: "g", Capacity: 1, HandlerTypes: []string{"t"}}}})
		if _, err := st.Recv(); err != nil {
			t.Fatalf("welcome for %s: %v", id, err)
		}
		return st
	}
	ended := func(st plutov1.WorkerService_ConnectClient, within time.Duration) time.Duration {
		start := time.Now()
		got := make(chan error, 1)
		go func() {
			for {
				if _, err := st.Recv(); err != nil {
					got <- err
					return
				}
			}
		}()
		select {
		case <-got:
			return time.Since(start)
		case <-time.After(within):
			t.Fatalf("the stream outlived its token by %v", within)
			return 0
		}
	}
	revokable := en.createToken("w-revoke", "worker", "", "")
	st := open(revokable, "w1")
	if st, b := en.do(en.admin, "DELETE", "/api/v1/tokens/w-revoke", ""); st != http.StatusOK {
		t.Fatalf("revoke: %d %s", st, b)
	}
	t.Logf("revoked: stream ended after %v", ended(st, time.Second))
	short := en.createToken("w-short", "worker", "", "2s")
	st = open(short, "w2")
	if d := ended(st, 4*time.Second); d < time.Second {
		t.Fatalf("the stream of a token valid for 2s ended after %v", d)
	}
}
