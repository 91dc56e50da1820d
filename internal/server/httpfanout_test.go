package server

import (
	"net/http"
	"testing"
	"time"
)

// A fan-out's parent shows its join state; a child's failure fails it and
// cancels the rest; retried, it runs them again, and its join state
// counts them anew.
func TestHTTPFanoutJoinStateAndRetry(t *testing.T) {
	_, c := startJobsServer(t)
	p := c.want(http.StatusCreated, "POST", "/api/v1/runs", `{"type":"t","group":"g","shards":3,"min_success":2}`)
	id := p["id"].(string)
	got := c.want(http.StatusOK, "GET", "/api/v1/runs/"+id, "")
	if mustJSON(got["fanout"]) != `{"children":3,"ended":0,"failed":0,"merge":null,"merge_run_id":null,"min_success":2}` {
		t.Fatalf("fan-out %s", mustJSON(got["fanout"]))
	}
	kids := c.want(http.StatusOK, "GET", "/api/v1/runs?parent="+id, "")["items"].([]any)
	if len(kids) != 3 {
		t.Fatalf("%d children listed", len(kids))
	}
	child := kids[0].(map[string]any)["id"].(string)
	if g := c.want(http.StatusOK, "GET", "/api/v1/runs/"+child, ""); g["fanout"] != nil {
		t.Errorf("a child shows a join state: %v", g["fanout"])
	}
	// Two children cancelled: more than min_success allows.
	for _, k := range kids[:2] {
		c.want(http.StatusOK, "POST", "/api/v1/runs/"+k.(map[string]any)["id"].(string)+"/cancel", "")
	}
	deadline := time.Now().Add(10 * time.Second)
	for got["status"] != "failed" {
		if time.Now().After(deadline) {
			t.Fatalf("parent %v 10s after two of three children were cancelled", got["status"])
		}
		time.Sleep(10 * time.Millisecond) // the joiner's commit
		got = c.want(http.StatusOK, "GET", "/api/v1/runs/"+id, "")
	}
	if fo := got["fanout"].(map[string]any); fo["failed"].(float64) < 2 {
		t.Errorf("failed parent's join state %v", fo)
	}
	r := c.want(http.StatusOK, "POST", "/api/v1/runs/"+id+"/retry", "")
	if r["status"] != "running" || r["attempt"].(float64) != 1 {
		t.Fatalf("retried parent %v attempt %v", r["status"], r["attempt"])
	}
	for got = c.want(http.StatusOK, "GET", "/api/v1/runs/"+id, ""); got["fanout"].(map[string]any)["ended"].(float64) != 0; {
		if time.Now().After(deadline) {
			t.Fatalf("join state after the retry: %v", got["fanout"])
		}
		time.Sleep(10 * time.Millisecond) // the cancel of the third child may land after
		got = c.want(http.StatusOK, "GET", "/api/v1/runs/"+id, "")
	}
	if got := c.do("POST", "/api/v1/runs/"+id+"/retry", ""); got.status != http.StatusConflict {
		t.Errorf("retry of a running parent: HTTP %d", got.status)
	}
}
