package server

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Alerts over the API: a job's rules, their validation, the groups'
// default rules, and an alert raised, listed and sent to a webhook by a
// real server.
func TestHTTPAlerts(t *testing.T) {
	var (
		mu     sync.Mutex
		bodies []string
	)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
	}))
	defer recv.Close()
	_, c := startJobsServer(t)

	c.want(http.StatusCreated, "PUT", "/api/v1/jobs/a", `{"type":"t","group":"g"}`)
	rules := `{"on":["skipped"],"webhook":"` + recv.URL + `/hook","format":"slack"}`
	b := c.want(http.StatusCreated, "PUT", "/api/v1/jobs/b", `{"type":"t","group":"g","depends_on":["a"],"alerts":`+rules+`}`)
	var want map[string]any
	_ = json.Unmarshal([]byte(rules), &want)
	if got := mustJSON(b["alerts"]); got != mustJSON(want) {
		t.Errorf("alerts %s, want %s", mustJSON(b["alerts"]), rules)
	}
	for _, tc := range []struct{ body, field string }{
		{`{"type":"t","alerts":{"on":["bogus"]}}`, "alerts.on"},
		{`{"type":"t","alerts":{"max_duration":"soon"}}`, "alerts.max_duration"},
		{`{"type":"t","alerts":{"sla":"2:30"}}`, "alerts.sla"},
		{`{"type":"t","alerts":{"on":["failed"],"webhook":"http://10.0.0.1/x"}}`, "alerts.webhook"},
		{`{"type":"t","alerts":{"on":["failed"],"webhook":"https://h.example.com/","format":"teams"}}`, "alerts.format"},
		{`{"type":"t","alerts":[{"on":["failed"]}]}`, "alerts"},
		{`{"type":"t","alerts":{"on":["failed"],"extra":1}}`, "extra"},
	} {
		r := c.do("PUT", "/api/v1/jobs/bad", tc.body)
		if _, msg, field := r.errBody(t); r.status != http.StatusBadRequest || field != tc.field {
			t.Errorf("%s: %d field %q (%s), want 400 on %s", tc.body, r.status, field, msg, tc.field)
		}
	}

	// a's run for T is cancelled: b's run for T is skipped, which alerts.
	ar := c.want(http.StatusCreated, "POST", "/api/v1/jobs/a/trigger", `{"logical_time":"2026-12-01T00:00:00Z"}`)
	c.want(http.StatusOK, "POST", "/api/v1/runs/"+ar["id"].(string)+"/cancel", "")
	deadline := time.Now().Add(20 * time.Second)
	var items []any
	for {
		l := c.want(http.StatusOK, "GET", "/api/v1/alerts", "")
		items, _ = l["items"].([]any)
		mu.Lock()
		n := len(bodies)
		mu.Unlock()
		if len(items) == 1 && n == 1 {
			if hook, _ := items[0].(map[string]any)["webhook"].(map[string]any); hook["state"] == "delivered" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("alerts %v, %d POSTs; want 1 delivered", items, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	al := items[0].(map[string]any)
	u, _ := url.Parse(recv.URL)
	hook := al["webhook"].(map[string]any)
	if al["rule"] != "skipped" || al["job"] != "b" || al["group"] != "g" || al["logical_time"] != "2026-12-01T00:00:00Z" ||
		hook["host"] != u.Host || hook["format"] != "slack" || strings.Contains(mustJSON(al), "/hook") {
		t.Errorf("alert %v", al)
	}
	mu.Lock()
	var msg struct{ Text string }
	_ = json.Unmarshal([]byte(bodies[0]), &msg)
	mu.Unlock()
	if !strings.Contains(msg.Text, "skipped alert for job b") || !strings.Contains(msg.Text, "dependencies") {
		t.Errorf("slack text %q", msg.Text)
	}
	if l := c.want(http.StatusOK, "GET", "/api/v1/alerts?job=a", ""); len(l["items"].([]any)) != 0 {
		t.Errorf("a's alerts: %v", l)
	}
	if l := c.want(http.StatusOK, "GET", "/api/v1/alerts?run="+al["run_id"].(string), ""); len(l["items"].([]any)) != 1 {
		t.Errorf("the run's alerts: %v", l)
	}
	for q, field := range map[string]string{"limit=0": "limit", "cursor=x": "cursor"} {
		if _, _, f := c.do("GET", "/api/v1/alerts?"+q, "").errBody(t); f != field {
			t.Errorf("?%s: field %q, want %s", q, f, field)
		}
	}

	// A group's default rules.
	if g := c.want(http.StatusOK, "GET", "/api/v1/groups/g/alerts", ""); g["alerts"] != nil {
		t.Errorf("no rules yet: %v", g)
	}
	g := c.want(http.StatusOK, "PUT", "/api/v1/groups/g/alerts", `{"on":["failed","timed_out"],"max_duration":"2h"}`)
	got := c.want(http.StatusOK, "GET", "/api/v1/groups/g/alerts", "")
	if mustJSON(g) != mustJSON(got) || !strings.Contains(mustJSON(got), `"max_duration":"2h"`) {
		t.Errorf("put %v, get %v", g, got)
	}
	if _, _, f := c.do("PUT", "/api/v1/groups/g/alerts", `{"sla":"9am"}`).errBody(t); f != "alerts.sla" {
		t.Errorf("bad group rules: field %q", f)
	}
	c.want(http.StatusNoContent, "DELETE", "/api/v1/groups/g/alerts", "")
	if g := c.want(http.StatusOK, "GET", "/api/v1/groups/g/alerts", ""); g["alerts"] != nil {
		t.Errorf("after delete: %v", g)
	}
}

// A webhook URL often holds a chat bot's token: callers who may not change
// jobs see only its scheme and host.
func TestAlertWebhookRedacted(t *testing.T) {
	en := newAuthEnv(t)
	const hook = "https://hooks.example.com/robot/send?access_token=secret"
	job := `{"type":"t","group":"g","alerts":{"on":["failed"],"webhook":"` + hook + `"}}`
	if st, b := en.do(en.admin, "PUT", "/api/v1/jobs/j", job); st != http.StatusCreated {
		t.Fatalf("PUT: %d %s", st, b)
	}
	if st, b := en.do(en.admin, "PUT", "/api/v1/groups/g/alerts", `{"on":["failed"],"webhook":"`+hook+`"}`); st != http.StatusOK {
		t.Fatalf("PUT group rules: %d %s", st, b)
	}
	for _, path := range []string{"/api/v1/jobs/j", "/api/v1/jobs", "/api/v1/groups/g/alerts"} {
		st, b := en.do(en.tokens["view"], "GET", path, "")
		if st != http.StatusOK || strings.Contains(string(b), "secret") || !strings.Contains(string(b), "https://hooks.example.com/…") {
			t.Errorf("viewer GET %s: %d %s", path, st, b)
		}
		if st, b := en.do(en.tokens["ops"], "GET", path, ""); st != http.StatusOK || !strings.Contains(string(b), "secret") {
			t.Errorf("operator GET %s: %d %s, want the whole URL", path, st, b)
		}
	}
}
