package server

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// guardReq sends one request with the given headers (Host "" keeps the
// server's address) and returns the status and error code.
func guardReq(t *testing.T, srv *httptest.Server, method, path, body string, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	r := httpResp{status: res.StatusCode, header: res.Header, body: b}
	if res.StatusCode < 300 {
		return res.StatusCode, ""
	}
	code, _, _ := r.errBody(t)
	return res.StatusCode, code
}

// The attack the guard exists for: a page on another origin POSTs a run
// as text/plain (no preflight) to a server on loopback.
func TestCrossOriginTextPlainSubmitCreatesNothing(t *testing.T) {
	f := newHTTPFake()
	srv := newHTTPTestAPI(t, f, HTTPOptions{})
	body := `{"type":"shell","group":"default","payload":{"cmd":"touch /tmp/pwned"}}`
	for _, hdr := range []map[string]string{
		{"Content-Type": "text/plain", "Origin": "http://evil.example"},
		{"Content-Type": "text/plain"},
		{"Content-Type": "application/x-www-form-urlencoded"},
		{"Content-Type": "multipart/form-data; boundary=x"},
		{"Content-Type": "application/json", "Origin": "http://evil.example"},
		{"Content-Type": "application/json", "Origin": "null"},
		{"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"},
		{"Content-Type": "application/json", "Host": "evil.example"},
		{"Content-Type": "application/json", "Host": "evil.example:7070"},
	} {
		status, code := guardReq(t, srv, http.MethodPost, "/api/v1/runs", body, hdr)
		if status != http.StatusUnsupportedMediaType && status != http.StatusForbidden {
			t.Errorf("%v: status %d (%s), want 415 or 403", hdr, status, code)
		}
	}
	if n := f.submitCount(); n != 0 {
		t.Fatalf("%d runs created by refused requests", n)
	}
}

func TestGuardStatusAndCodes(t *testing.T) {
	f := newHTTPFake()
	g, err := newGuard(guardOptions{AllowedOrigins: []string{"https://console.example:8443"}, AllowedHosts: []string{"pluto.internal"}, Advertised: "sched.example:7070"})
	if err != nil {
		t.Fatal(err)
	}
	srv := newHTTPTestAPI(t, f, HTTPOptions{guard: g})
	own := strings.TrimPrefix(srv.URL, "http://")
	body := `{"type":"t","group":"g"}`
	json := "application/json"
	cases := []struct {
		name   string
		method string
		path   string
		hdr    map[string]string
		status int
		code   string
	}{
		{"json submit", "POST", "/api/v1/runs", map[string]string{"Content-Type": json}, 201, ""},
		{"json with charset", "POST", "/api/v1/runs", map[string]string{"Content-Type": "application/json; charset=utf-8"}, 201, ""},
		{"no content type", "POST", "/api/v1/runs", nil, 415, codeUnsupportedMediaType},
		{"text/plain", "POST", "/api/v1/runs", map[string]string{"Content-Type": "text/plain"}, 415, codeUnsupportedMediaType},
		{"same origin", "POST", "/api/v1/runs", map[string]string{"Content-Type": json, "Origin": "http://" + own}, 201, ""},
		{"allowed origin", "POST", "/api/v1/runs", map[string]string{"Content-Type": json, "Origin": "https://console.example:8443"}, 201, ""},
		{"other port of allowed origin", "POST", "/api/v1/runs", map[string]string{"Content-Type": json, "Origin": "https://console.example"}, 403, codeForbidden},
		{"foreign origin on a read", "GET", "/api/v1/runs", map[string]string{"Origin": "http://evil.example"}, 403, codeForbidden},
		{"same-site fetch", "GET", "/api/v1/runs", map[string]string{"Sec-Fetch-Site": "same-origin"}, 200, ""},
		{"configured host", "GET", "/api/v1/runs", map[string]string{"Host": "pluto.internal:7070"}, 200, ""},
		{"advertised host", "GET", "/api/v1/runs", map[string]string{"Host": "sched.example:7070"}, 200, ""},
		{"localhost", "GET", "/api/v1/runs", map[string]string{"Host": "localhost:7070"}, 200, ""},
		{"ip v6", "GET", "/api/v1/runs", map[string]string{"Host": "[::1]:7070"}, 200, ""},
		{"rebinding name", "GET", "/api/v1/runs", map[string]string{"Host": "rebind.evil.example"}, 403, codeForbidden},
		{"health from anywhere", "GET", "/healthz", map[string]string{"Host": "rebind.evil.example", "Origin": "http://evil.example"}, 200, ""},
		{"delete without type", "DELETE", "/api/v1/jobs/x", nil, 404, codeNotFound},
		{"delete with text/plain", "DELETE", "/api/v1/jobs/x", map[string]string{"Content-Type": "text/plain"}, 415, codeUnsupportedMediaType},
	}
	for _, c := range cases {
		b := ""
		if c.method == "POST" {
			b = body
		}
		status, code := guardReq(t, srv, c.method, c.path, b, c.hdr)
		if status != c.status || code != c.code {
			t.Errorf("%s: %d %q, want %d %q", c.name, status, code, c.status, c.code)
		}
	}
}

func TestGuardOptionsRefuseNonOrigins(t *testing.T) {
	for _, o := range []string{"console.example", "ftp://x.example", "https://x.example/path", "https://"} {
		if _, err := newGuard(guardOptions{AllowedOrigins: []string{o}}); err == nil || !strings.Contains(err.Error(), "allowed-origins") {
			t.Errorf("origin %q: %v, want an error naming allowed-origins", o, err)
		}
	}
}

// A body trickled one byte at a time is cut off after the body timeout,
// not held open as long as the client likes.
func TestSlowBodyIsCutOff(t *testing.T) {
	f := newHTTPFake()
	g, err := newGuard(guardOptions{BodyTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv := newHTTPTestAPI(t, f, HTTPOptions{guard: g})
	c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = io.WriteString(c, "POST /api/v1/runs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	done := make(chan struct{})
	go func() { // one byte every 100 ms: never finishes on its own
		defer close(done)
		for range 100 {
			time.Sleep(100 * time.Millisecond)
			if _, err := c.Write([]byte(" ")); err != nil {
				return
			}
		}
	}()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	took := time.Since(start)
	if err == nil {
		res.Body.Close()
		if res.StatusCode < 400 {
			t.Fatalf("trickled body answered %d", res.StatusCode)
		}
	}
	if took > 3*time.Second {
		t.Fatalf("trickled body held the request for %v (err %v), want it cut off after ~300ms", took, err)
	}
	c.Close()
	<-done
	if n := f.submitCount(); n != 0 {
		t.Fatalf("%d runs created", n)
	}
}

// FuzzGuard: no header a client sends makes the guard panic, and a
// request it lets through is one the rules allow.
func FuzzGuard(f *testing.F) {
	f.Add("POST", "localhost:7070", "http://localhost:7070", "application/json", "")
	f.Add("POST", "evil.example", "null", "text/plain", "cross-site")
	f.Add("GET", "[::1", "http://[::1", "", "")
	f.Add("PUT", "", "%zz", "application/json;;;", "same-site")
	g, err := newGuard(guardOptions{AllowedOrigins: []string{"https://ok.example"}, AllowedHosts: []string{"ok.example"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, method, host, origin, ct, site string) {
		r := httptest.NewRequest(http.MethodGet, "/api/v1/runs", nil)
		r.Method, r.Host = method, host
		r.Header.Set("Origin", origin)
		r.Header.Set("Content-Type", ct)
		r.Header.Set("Sec-Fetch-Site", site)
		if err := g.check(r); err == nil {
			if (method == "POST" || method == "PUT" || method == "PATCH") && !isJSON(ct) {
				t.Fatalf("%s with Content-Type %q let through", method, ct)
			}
			if origin != "" && origin != "https://ok.example" && !strings.EqualFold(strings.TrimPrefix(strings.TrimPrefix(origin, "http://"), "https://"), host) {
				t.Fatalf("origin %q let through for host %q", origin, host)
			}
		}
	})
}
