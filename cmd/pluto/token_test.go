package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Secrets of the shape auth.Generate gives: plt_ and 43 base62 characters.
var (
	fakeSecret    = "plt_" + strings.Repeat("A", 43)
	fakeDevSecret = "plt_" + strings.Repeat("dev", 14) + "x"
	// fakeStaleSecret is refused with 401 (a dev server's old token).
	fakeStaleSecret = "plt_" + strings.Repeat("R", 43)
)

// The token and audit routes, as the contract has them: tokens need a
// bearer token ("Bearer viewer" is refused with 403).
func init() { fakeRoutes = append(fakeRoutes, addTokenRoutes) }

func fakeToken(name string, revoked bool) map[string]any {
	t := map[string]any{"name": name, "role": "client", "groups": []string{"reports"},
		"created_at": "2026-11-21T08:00:00.5Z", "expires_at": "2026-12-21T08:00:00Z", "revoked_at": nil}
	if revoked {
		t["revoked_at"] = "2026-11-22T09:00:00Z"
	}
	return t
}

// fakeAuth answers 401 or 403 like the server and reports whether the
// request may go on.
func fakeAuth(w http.ResponseWriter, r *http.Request) bool {
	switch r.Header.Get("Authorization") {
	case "":
		apiErr(w, 401, "unauthenticated", "missing bearer token", "")
		return false
	case "Bearer " + fakeStaleSecret:
		apiErr(w, 401, "unauthenticated", "unknown token", "")
		return false
	case "Bearer viewer":
		apiErr(w, 403, "forbidden", "role viewer may not token-admin", "")
		return false
	}
	return true
}

func addTokenRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/v1/tokens", func(w http.ResponseWriter, r *http.Request) {
		if !fakeAuth(w, r) {
			return
		}
		var body struct {
			Name    string   `json:"name"`
			Role    string   `json:"role"`
			Groups  []string `json:"groups"`
			Expires string   `json:"expires"`
		}
		raw, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(raw, &body)
		if body.Name == "taken" {
			apiErr(w, 409, "conflict", "token taken already exists", "name")
			return
		}
		var exp any
		if body.Expires != "" {
			exp = "2026-12-21T08:00:00Z"
		}
		writeJSONResp(w, 201, map[string]any{"name": body.Name, "role": body.Role, "groups": body.Groups, "expires_at": exp, "token": fakeSecret})
	})
	mux.HandleFunc("GET /api/v1/tokens", func(w http.ResponseWriter, r *http.Request) {
		if !fakeAuth(w, r) {
			return
		}
		all := fakeToken("admin", false)
		all["role"], all["groups"], all["expires_at"] = "admin", []string{}, nil
		writeJSONResp(w, 200, map[string]any{"items": []any{all, fakeToken("ci", true)}})
	})
	mux.HandleFunc("DELETE /api/v1/tokens/{name}", func(w http.ResponseWriter, r *http.Request) {
		if !fakeAuth(w, r) {
			return
		}
		if r.PathValue("name") == "nope" {
			apiErr(w, 404, "not_found", "token nope not found", "")
			return
		}
		writeJSONResp(w, 200, fakeToken(r.PathValue("name"), true))
	})
	mux.HandleFunc("GET /api/v1/audit", func(w http.ResponseWriter, r *http.Request) {
		if !fakeAuth(w, r) {
			return
		}
		page := map[string]any{"items": []any{
			map[string]any{"seq": 7, "at": "2026-11-21T08:00:01.25Z", "actor": "admin", "action": "token.create", "target": "ci", "outcome": "ok", "detail": "role client\tgroups reports"},
			map[string]any{"seq": 6, "at": "2026-11-21T08:00:00Z", "actor": "", "action": "run.cancel", "target": "", "outcome": "denied", "detail": ""},
		}}
		if r.URL.Query().Get("cursor") == "" {
			page["next_cursor"] = "6"
		}
		writeJSONResp(w, 200, page)
	})
}

// checkTable compares a table's lines, with the spaces between columns
// squeezed, to want.
func checkTable(t *testing.T, out string, want ...string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(want) {
		t.Fatalf("table of %d lines, want %d:\n%s", len(lines), len(want), out)
	}
	for i, l := range lines {
		if got := strings.Join(strings.Fields(l), " "); got != want[i] {
			t.Errorf("line %d %q, want %q", i, got, want[i])
		}
	}
}

func authEnv(f *fakeAPI) map[string]string {
	return map[string]string{envServer: f.URL, envToken: "admin"}
}

func TestTokenCreate(t *testing.T) {
	f := newFakeAPI(t)
	r := runCLI(t, authEnv(f), "token", "create", "--name", "ci", "--role", "Client", "--groups", "b,a", "--expires", "30d")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if got := f.last(); got.method != "POST" || got.path != "/api/v1/tokens" ||
		got.body != `{"name":"ci","role":"client","groups":["a","b"],"expires":"30d"}` {
		t.Errorf("request %s %s %s", got.method, got.path, got.body)
	}
	for _, want := range []string{"Name:", "ci", "Role:", "client", "Groups:", "a,b", "Expires:", "2026-12-21T08:00:00Z", "Token:", fakeSecret, "shown only once"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("table output lacks %q:\n%s", want, r.stdout)
		}
	}

	// No groups: [] (all groups); no --expires: not sent, never expires.
	r = runCLI(t, authEnv(f), "token", "create", "--name", "w", "--role", "worker", "-o", "json")
	if r.code != 0 {
		t.Fatalf("json: exit %d: %s", r.code, r.stderr)
	}
	if got := f.last().body; got != `{"name":"w","role":"worker","groups":[]}` {
		t.Errorf("body %s", got)
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("json output %q: %v", r.stdout, err)
	}
	keys := make([]string, 0, len(out))
	for k := range out {
		keys = append(keys, k)
	}
	if len(out) != 5 || out["token"] != fakeSecret || out["expires_at"] != nil || out["name"] != "w" || out["role"] != "worker" {
		t.Errorf("json output %v (keys %v)", out, keys)
	}
	if g, ok := out["groups"].([]any); !ok || len(g) != 0 {
		t.Errorf("groups %v, want []", out["groups"])
	}

	r = runCLI(t, authEnv(f), "token", "create", "--name", "taken", "--role", "viewer")
	if r.code != 1 || !strings.Contains(r.stderr, "already exists") {
		t.Errorf("conflict: %d %q", r.code, r.stderr)
	}
}

func TestTokenUsageErrors(t *testing.T) {
	f := newFakeAPI(t)
	for _, c := range []struct {
		args []string
		flag string
	}{
		{[]string{"token", "create", "--role", "client"}, "--name"},
		{[]string{"token", "create", "--name", "x"}, "--role"},
		{[]string{"token", "create", "--name", "x", "--role", "root"}, "--role"},
		{[]string{"token", "create", "--name", "-x", "--role", "admin"}, "--name"},
		{[]string{"token", "create", "--name", "a b", "--role", "admin"}, "--name"},
		{[]string{"token", "create", "--name", "x", "--role", "admin", "--expires", "soon"}, "--expires"},
		{[]string{"token", "create", "--name", "x", "--role", "admin", "--expires", "-1d"}, "--expires"},
		{[]string{"token", "create", "--name", "x", "--role", "admin", "--expires", "0s"}, "--expires"},
		{[]string{"token", "create", "--name", "x", "--role", "admin", "--groups", "a,a"}, "--groups"},
		{[]string{"token", "create", "--name", "x", "--role", "admin", "extra"}, "extra"},
		{[]string{"token", "revoke"}, "token name"},
		{[]string{"token", "revoke", "a/b"}, "a/b"},
		{[]string{"token", "ls", "-o", "yaml"}, "--output"},
		{[]string{"token", "bogus"}, "bogus"},
		{[]string{"audit", "--since", "yesterday"}, "--since"},
		{[]string{"audit", "--until", "-1h"}, "--until"},
		{[]string{"audit", "--since", "1h", "--until", "2h"}, "--since"},
		{[]string{"audit", "--limit", "0"}, "--limit"},
		{[]string{"audit", "--limit", "1001"}, "--limit"},
		{[]string{"audit", "extra"}, "extra"},
		{[]string{"worker", "--token", "plt_a b"}, "invalid token from --token"},
	} {
		r := runCLI(t, authEnv(f), c.args...)
		if r.code != 2 || !strings.Contains(r.stderr, c.flag) || !strings.Contains(r.stderr, "--help") {
			t.Errorf("%v: exit %d, stderr %q; want 2 naming %s", c.args, r.code, r.stderr, c.flag)
		}
	}
	if n := len(f.reqs()); n != 0 {
		t.Errorf("usage errors sent %d requests: %+v", n, f.reqs())
	}
}

func TestTokenLsAndRevoke(t *testing.T) {
	f := newFakeAPI(t)
	r := runCLI(t, authEnv(f), "token", "ls")
	if r.code != 0 {
		t.Fatalf("ls: %d %s", r.code, r.stderr)
	}
	checkTable(t, r.stdout,
		"NAME ROLE GROUPS CREATED EXPIRES REVOKED",
		"admin admin all 2026-11-21T08:00:00Z never -",
		"ci client reports 2026-11-21T08:00:00Z 2026-12-21T08:00:00Z 2026-11-22T09:00:00Z")
	r = runCLI(t, authEnv(f), "token", "ls", "-o", "json")
	var list struct{ Items []map[string]any }
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &list) != nil || len(list.Items) != 2 {
		t.Errorf("ls json: %d %q", r.code, r.stdout)
	}

	r = runCLI(t, authEnv(f), "token", "revoke", "ci")
	if r.code != 0 || r.stdout != "token ci revoked\n" || f.last().method != "DELETE" || f.last().path != "/api/v1/tokens/ci" {
		t.Errorf("revoke: %d %q %+v", r.code, r.stdout, f.last())
	}
	r = runCLI(t, authEnv(f), "token", "revoke", "ci", "-o", "json")
	var tok map[string]any
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &tok) != nil || tok["revoked_at"] == nil {
		t.Errorf("revoke json: %d %q", r.code, r.stdout)
	}
	r = runCLI(t, authEnv(f), "token", "revoke", "nope")
	if r.code != 1 || !strings.Contains(r.stderr, "token nope not found") {
		t.Errorf("revoke unknown: %d %q", r.code, r.stderr)
	}
}

// 401 and 403 fail (exit 1) with the server's message, and a 401 says
// where the token came from.
func TestTokenRefused(t *testing.T) {
	f := newFakeAPI(t)
	r := runCLI(t, map[string]string{envServer: f.URL, envData: t.TempDir()}, "token", "ls")
	if r.code != 1 || !strings.Contains(r.stderr, "missing bearer token") || !strings.Contains(r.stderr, "no token given: set --token or PLUTO_TOKEN") {
		t.Errorf("401: %d %q", r.code, r.stderr)
	}
	r = runCLI(t, map[string]string{envServer: f.URL, envToken: "viewer"}, "audit")
	if r.code != 1 || !strings.Contains(r.stderr, "may not token-admin") {
		t.Errorf("403: %d %q", r.code, r.stderr)
	}
}

func TestAudit(t *testing.T) {
	f := newFakeAPI(t)
	before := time.Now()
	r := runCLI(t, authEnv(f), "audit", "--actor", "admin", "--action", "token.create", "--target", "ci",
		"--since", "1h", "--until", "2099-11-21T10:00:00+02:00", "--limit", "2")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	q := f.last().query
	if f.last().path != "/api/v1/audit" || q.Get("actor") != "admin" || q.Get("action") != "token.create" || q.Get("target") != "ci" ||
		q.Get("until") != "2099-11-21T08:00:00Z" || q.Get("limit") != "2" || q.Has("cursor") {
		t.Errorf("query %v", q)
	}
	since, err := time.Parse(time.RFC3339, q.Get("since"))
	if err != nil || since.Before(before.Add(-time.Hour-time.Second)) || since.After(time.Now().Add(-time.Hour)) {
		t.Errorf("since %q (%v), want an hour ago", q.Get("since"), err)
	}
	checkTable(t, r.stdout,
		"TIME ACTOR ACTION TARGET OUTCOME DETAIL",
		"2026-11-21T08:00:01Z admin token.create ci ok role client groups reports",
		"2026-11-21T08:00:00Z (anonymous) run.cancel - denied -")
	if !strings.Contains(r.stderr, "--cursor 6") {
		t.Errorf("no next cursor hint: %q", r.stderr)
	}

	r = runCLI(t, authEnv(f), "audit", "--cursor", "6", "-o", "json")
	var page map[string]any
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &page) != nil || page["next_cursor"] != nil || f.last().query.Get("cursor") != "6" {
		t.Errorf("json: %d %q %v", r.code, r.stdout, f.last().query)
	}
	if len(f.last().query) != 1 {
		t.Errorf("query without filters %v, want only the cursor", f.last().query)
	}
}

func TestParseWhen(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"1h":                          now.Add(-time.Hour),
		"7d":                          now.Add(-7 * 24 * time.Hour),
		"1w1d":                        now.Add(-8 * 24 * time.Hour),
		"2026-11-20T08:00:00Z":        time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC),
		"2026-11-20T08:00:00.5+01:00": time.Date(2026, 11, 20, 7, 0, 0, 5e8, time.UTC),
	} {
		got, err := parseWhen(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseWhen(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0s", "-1h", "yesterday", "2026-11-20"} {
		if _, err := parseWhen(in, now); err == nil {
			t.Errorf("parseWhen(%q) succeeded", in)
		}
	}
}

func writeTokenFile(t *testing.T, dir, content string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, adminTokenFile), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// The token precedence: --token, PLUTO_TOKEN, then (loopback servers
// only) $PLUTO_DATA/admin.token or ./pluto-data/admin.token.
func TestResolveToken(t *testing.T) {
	data := t.TempDir()
	writeTokenFile(t, data, fakeDevSecret+"\n")
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	withData := env(map[string]string{envData: data})
	for _, c := range []struct {
		name      string
		flagSet   bool
		value     string
		getenv    func(string) string
		servers   []string
		want      string
		wantFrom  string
		wantError string
	}{
		{"flag wins", true, "flag", withData, []string{"127.0.0.1"}, "flag", "--token", ""},
		{"empty flag sends none, reads no file", true, "", withData, []string{"127.0.0.1"}, "", "--token", ""},
		{"env (the flag's default) wins over the file", false, "env", withData, []string{"127.0.0.1"}, "env", envToken, ""},
		{"file for 127.0.0.1", false, "", withData, []string{"127.0.0.1"}, fakeDevSecret, filepath.Join(data, adminTokenFile), ""},
		{"file for 127.1.2.3:7071", false, "", withData, []string{"127.1.2.3:7071"}, fakeDevSecret, filepath.Join(data, adminTokenFile), ""},
		{"file for ::1", false, "", withData, []string{"::1"}, fakeDevSecret, filepath.Join(data, adminTokenFile), ""},
		{"file for [::1]:7071", false, "", withData, []string{"[::1]:7071"}, fakeDevSecret, filepath.Join(data, adminTokenFile), ""},
		{"file for LocalHost", false, "", withData, []string{"LocalHost"}, fakeDevSecret, filepath.Join(data, adminTokenFile), ""},
		{"no file for another host", false, "", withData, []string{"pluto.example.com"}, "", "", ""},
		{"no file for 10.0.0.1", false, "", withData, []string{"10.0.0.1:7071"}, "", "", ""},
		{"no file unless every server is loopback", false, "", withData, []string{"127.0.0.1:7071", "pluto-2:7071"}, "", "", ""},
		{"no file for localhost.evil.com", false, "", withData, []string{"localhost.evil.com"}, "", "", ""},
		{"missing file: none", false, "", env(map[string]string{envData: t.TempDir()}), []string{"127.0.0.1"}, "", "", ""},
	} {
		got, err := resolveToken(c.flagSet, c.value, c.getenv, c.servers...)
		if err != nil || got.token != c.want || got.from != c.wantFrom {
			t.Errorf("%s: %+v, %v; want %q from %q", c.name, got, err, c.want, c.wantFrom)
		}
	}

	bad := t.TempDir()
	writeTokenFile(t, bad, "not a token\n")
	if _, err := resolveToken(false, "", env(map[string]string{envData: bad}), "127.0.0.1"); err == nil || !strings.Contains(err.Error(), "does not hold a Pluto token") {
		t.Errorf("bad file: %v", err)
	}

	// Without PLUTO_DATA: ./pluto-data/admin.token, relative to the
	// working directory.
	wd := t.TempDir()
	t.Chdir(wd)
	writeTokenFile(t, filepath.Join(wd, defaultDataDir), fakeDevSecret+"\n")
	got, err := resolveToken(false, "", env(nil), "localhost")
	if err != nil || got.token != fakeDevSecret || got.from != filepath.Join(defaultDataDir, adminTokenFile) {
		t.Errorf("./pluto-data: %+v, %v", got, err)
	}
}

// The CLI sends the dev admin token to a loopback server, and a 401 names
// the file.
func TestDevTokenPickup(t *testing.T) {
	f := newFakeAPI(t)
	data := t.TempDir()
	writeTokenFile(t, data, fakeDevSecret+"\n")
	host := strings.TrimPrefix(f.URL, "http://127.0.0.1")
	for _, c := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{map[string]string{envServer: f.URL, envData: data}, nil, "Bearer " + fakeDevSecret},
		{map[string]string{envServer: "http://localhost" + host, envData: data}, nil, "Bearer " + fakeDevSecret},
		{map[string]string{envServer: f.URL, envData: data, envToken: "env"}, nil, "Bearer env"},
		{map[string]string{envServer: f.URL, envData: data, envToken: "env"}, []string{"--token", "flag"}, "Bearer flag"},
		{map[string]string{envServer: f.URL, envData: data}, []string{"--token", ""}, ""},
	} {
		r := runCLI(t, c.env, append([]string{"run", "get", "r_ok"}, c.args...)...)
		if r.code != 0 || f.last().auth != c.want {
			t.Errorf("env %v args %v: exit %d, auth %q; want %q (%s)", c.env, c.args, r.code, f.last().auth, c.want, r.stderr)
		}
	}
	r := runCLI(t, map[string]string{envServer: f.URL, envData: data}, "token", "ls", "--token", "")
	if r.code != 1 || !strings.Contains(r.stderr, "no token given") {
		t.Errorf("401 without token: %d %q", r.code, r.stderr)
	}
	stale := t.TempDir()
	writeTokenFile(t, stale, fakeStaleSecret+"\n")
	r = runCLI(t, map[string]string{envServer: f.URL, envData: stale}, "token", "ls")
	if r.code != 1 || !strings.Contains(r.stderr, "unknown token (the token from "+filepath.Join(stale, adminTokenFile)+", written by pluto dev") {
		t.Errorf("401 with the dev token: %d %q", r.code, r.stderr)
	}
}

// pluto worker takes the same precedence, for its gRPC addresses.
func TestWorkerToken(t *testing.T) {
	data := t.TempDir()
	writeTokenFile(t, data, fakeDevSecret+"\n")
	for _, c := range []struct {
		env   map[string]string
		args  []string
		addrs []string
		want  string
	}{
		{map[string]string{envData: data}, nil, []string{"127.0.0.1:7071", "[::1]:7071"}, fakeDevSecret},
		{map[string]string{envData: data}, nil, []string{"127.0.0.1:7071", "pluto-2:7071"}, ""},
		{map[string]string{envData: data, envToken: "plt_env"}, nil, []string{"127.0.0.1:7071"}, "plt_env"},
		{map[string]string{envData: data, envToken: "plt_env"}, []string{"--token", "plt_flag"}, []string{"127.0.0.1:7071"}, "plt_flag"},
	} {
		a := newApp(strings.NewReader(""), io.Discard, io.Discard, func(k string) string { return c.env[k] })
		cmd := a.newWorkerCmd()
		if err := cmd.ParseFlags(c.args); err != nil {
			t.Fatal(err)
		}
		tok, _ := cmd.Flags().GetString("token")
		got, err := a.workerToken(cmd, tok, c.addrs)
		if err != nil || got != c.want {
			t.Errorf("env %v args %v addrs %v: %q, %v; want %q", c.env, c.args, c.addrs, got, err, c.want)
		}
	}
}
