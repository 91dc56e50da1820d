package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/client"
)

// Feedback over the API: callback_url on submit (HTTP and gRPC) and jobs,
// its validation, the run's callback object, and a delivery made by a
// real server to a receiver.

func TestHTTPCallbackURLValidation(t *testing.T) {
	_, c := startJobsServer(t)
	for _, tc := range []struct{ body, field string }{
		{`{"type":"t","group":"g","callback_url":"/relative"}`, "callback_url"},
		{`{"type":"t","group":"g","callback_url":"ftp://x.example/"}`, "callback_url"},
		{`{"type":"t","group":"g","callback_url":"https://` + strings.Repeat("a", 2050) + `.example/"}`, "callback_url"},
		{`{"type":"t","group":"g","callback_url":"http://"}`, "callback_url"},
		{`{"type":"t","group":"g","callback_url":7}`, "callback_url"},
		{`{"runs":[{"type":"t","group":"g"},{"type":"t","group":"g","callback_url":"nope"}]}`, "runs[1].callback_url"},
	} {
		r := c.do("POST", "/api/v1/runs", tc.body)
		code, msg, field := r.errBody(t)
		if r.status != http.StatusBadRequest || field != tc.field {
			t.Errorf("%.80s: %d %s field %q (%s), want 400 on %s", tc.body, r.status, code, field, msg, tc.field)
		}
	}
	r := c.do("PUT", "/api/v1/jobs/j", `{"type":"t","callback_url":"mailto:a@b"}`)
	if _, _, field := r.errBody(t); r.status != http.StatusBadRequest || field != "callback_url" {
		t.Errorf("job with a bad URL: %d %s", r.status, r.body)
	}
}

func TestHTTPCallbackShape(t *testing.T) {
	_, c := startJobsServer(t)
	plain := c.want(http.StatusCreated, "POST", "/api/v1/runs", `{"type":"t","group":"g"}`)
	checkHTTPRunKeys(t, plain)
	if plain["callback_url"] != nil || plain["callback"] != nil {
		t.Errorf("run without a URL: callback_url %v, callback %v; want null, null", plain["callback_url"], plain["callback"])
	}
	const url = "https://hooks.example.com/pluto?src=test"
	m := c.want(http.StatusCreated, "POST", "/api/v1/runs", `{"type":"t","group":"g","callback_url":"`+url+`"}`)
	checkHTTPRunKeys(t, m)
	if m["callback_url"] != url {
		t.Errorf("callback_url %v", m["callback_url"])
	}
	cb, _ := m["callback"].(map[string]any)
	want := map[string]any{"state": "none", "attempts": 0.0, "next_at": nil, "last_error": nil, "delivered_at": nil}
	if b, w := cbJSON(cb), cbJSON(want); b != w {
		t.Errorf("callback %s, want %s", b, w)
	}
	// A job keeps its URL and shows it.
	job := c.want(http.StatusCreated, "PUT", "/api/v1/jobs/hooked", `{"type":"t","callback_url":"`+url+`"}`)
	if job["callback_url"] != url {
		t.Errorf("job callback_url %v", job["callback_url"])
	}
	run := c.want(http.StatusCreated, "POST", "/api/v1/jobs/hooked/trigger", ``)
	if run["callback_url"] != url {
		t.Errorf("triggered run's callback_url %v", run["callback_url"])
	}
	job = c.want(http.StatusOK, "PUT", "/api/v1/jobs/hooked", `{"type":"t"}`)
	if job["callback_url"] != nil {
		t.Errorf("job callback_url after removal %v", job["callback_url"])
	}
}

func cbJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestCallbackDeliveredByServer: a run cancelled through the API is POSTed
// to its receiver; the run then shows the delivery, over HTTP and gRPC.
func TestCallbackDeliveredByServer(t *testing.T) {
	var (
		mu   sync.Mutex
		got  []map[string]any
		hdrs []http.Header
	)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		mu.Lock()
		got, hdrs = append(got, m), append(hdrs, r.Header.Clone())
		mu.Unlock()
	}))
	defer recv.Close()
	s, c := startJobsServer(t)
	gc, err := client.Dial(s.GRPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	if _, err := gc.Submit(ctx, client.RunSpec{Type: "t", Group: "g", CallbackURL: "gopher://x"}); err == nil {
		t.Error("gRPC submit with a bad URL accepted")
	} else if fe := (*client.FieldError)(nil); !errors.As(err, &fe) || fe.Field != "callback_url" {
		t.Errorf("gRPC submit with a bad URL: %v, want a field error on callback_url", err)
	}
	run, err := gc.Submit(ctx, client.RunSpec{Type: "nobody", Group: "g", CallbackURL: recv.URL + "/hook"})
	if err != nil {
		t.Fatal(err)
	}
	if run.CallbackURL != recv.URL+"/hook" || run.Callback == nil || run.Callback.State != client.CallbackNone {
		t.Fatalf("submitted run: %q %+v", run.CallbackURL, run.Callback)
	}
	c.want(http.StatusOK, "POST", "/api/v1/runs/"+run.ID+"/cancel", ``)
	deadline := time.Now().Add(15 * time.Second)
	var m map[string]any
	for {
		m = c.want(http.StatusOK, "GET", "/api/v1/runs/"+run.ID, ``)
		if cb, _ := m["callback"].(map[string]any); cb["state"] == "delivered" || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cb, _ := m["callback"].(map[string]any)
	if cb["state"] != "delivered" || cb["attempts"] != 1.0 || cb["delivered_at"] == nil || cb["next_at"] != nil {
		t.Fatalf("callback %v", cb)
	}
	mu.Lock()
	if len(got) != 1 || got[0]["id"] != run.ID || got[0]["status"] != "cancelled" ||
		hdrs[0].Get("X-Pluto-Run-Id") != run.ID || hdrs[0].Get("X-Pluto-Delivery-Attempt") != "1" {
		t.Errorf("receiver got %v %v", got, hdrs)
	}
	mu.Unlock()
	viaGRPC, err := gc.Get(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if viaGRPC.Callback == nil || viaGRPC.Callback.State != client.CallbackDelivered || viaGRPC.Callback.Attempts != 1 || viaGRPC.Callback.DeliveredAt.IsZero() {
		t.Errorf("gRPC run callback %+v", viaGRPC.Callback)
	}
}
