package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/pluto-sched/pluto/internal/store"
)

// FuzzJobPut drives PUT /api/v1/jobs/{name} with arbitrary bodies against
// a real engine on SQLite (started once per fuzzing process), so the
// engine's and the store's answers to odd definitions are fuzzed too. Run
// it with
//
//	go test -run '^$' -fuzz FuzzJobPut -fuzztime 60s -fuzzminimizetime 2s ./internal/server/
//
// (an iteration writes to SQLite, so the default minute of minimizing each
// new input stalls the fuzzer for long stretches).
//
// Invariants, for any body: no panic, nothing logged, no 5xx, JSON answers
// with the error envelope (see checkFuzzAnswer); a 2xx is a 201 (every
// iteration uses a new name) with the job as saved, readable afterwards;
// a 4xx from the engine names the field at fault; after any error the job
// does not exist.

var jobPutSeeds = []string{
	// valid
	`{"type":"shell","group":"default","payload":{"cmd":"echo hi"},"schedule":"0 0/1 * * * ?","timezone":"UTC","misfire":"once","overlap":"forbid","routing":"hash","priority":3,"timeout":"30m","retries":2}`,
	`{"type":"noop","schedule":"30 2 * * 1-5","timezone":"Asia/Shanghai","misfire":"all","misfire_max":10,"overlap":"queue"}`,
	`{"type":"noop","schedule":"@every 90s","overlap":"replace","paused":true}`,
	`{"type":"noop","schedule":"@daily","timeout":"1d","depends_on":[],"shards":0}`,
	`{"type":"noop"}`,
	`{"type":" noop ","group":" g ","payload":"  [1, 2, {\"a\" : null}] ","schedule":" @hourly "}`,
	`{"type":"noop","payload":null,"routing":null,"timeout":null,"next_fire":"2026-01-01T00:00:00Z","version":7,"created_at":null,"updated_at":"x"}`,
	`{"TYPE":"noop","Schedule":"@weekly"}`,
	`{"type":"noop","schedule":"0 0 2 L * ?"}`,
	`{"type":"noop","schedule":"0 15 10 ? * 6#3"}`,
	`{"type":"noop","schedule":"0 0 12 LW * ?"}`,
	// malformed
	``, `null`, `[]`, `"x"`, `{"type":"noop"`, `{"type":"noop"} x`, "\xef\xbb\xbf{\"type\":\"noop\"}",
	`{"type":"noop","payload":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`,
	// wrong types and values
	`{"type":7}`, `{"type":"noop","depends_on":"a"}`, `{"type":"noop","depends_on":[1]}`, `{"type":"noop","paused":1}`,
	`{"type":"noop","timeout":30}`, `{"type":"noop","timeout":"forever"}`, `{"type":"noop","timeout":"-1s"}`,
	`{"type":"noop","timeout":"9223372036854775807"}`, `{"type":"noop","timeout":"2562048h"}`,
	`{"type":"noop","priority":1e400}`, `{"type":"noop","retries":9223372036854775808}`, `{"type":"noop","misfire_max":0}`,
	`{"type":"noop","misfire_max":99999999}`, `{"type":"noop","shards":4}`, `{"type":"noop","depends_on":["x"]}`,
	`{"type":"noop","shards":4,"min_success":0.5,"merge":"sum"}`, `{"type":"noop","shards":4,"min_success":5}`, `{"type":"noop","min_success":1}`,
	`{"type":"noop","shards":4,"routing":"broadcast"}`, `{"type":"noop","routing":"shard-broadcast","merge":"m"}`, `{"type":"noop","shards":100001}`,
	`{"type":"noop","misfire":"ALL"}`, `{"type":"noop","overlap":""}`, `{"type":"noop","routing":"broadcast"}`,
	`{"type":"noop","version":"1"}`, `{"type":"noop","next_fire":5}`,
	// schedules and zones
	`{"type":"noop","schedule":"* * * * * ?"}`, `{"type":"noop","schedule":"0 0 25 * * ?"}`, `{"type":"noop","schedule":"@every 0s"}`,
	`{"type":"noop","schedule":"@every -1s"}`, `{"type":"noop","schedule":"0 0 0 30 2 ?"}`, `{"type":"noop","schedule":"0 0 0 1 1 ? 1999"}`,
	`{"type":"noop","schedule":"@daily","timezone":"Local"}`, `{"type":"noop","schedule":"@daily","timezone":"../../etc/passwd"}`,
	`{"type":"noop","schedule":"@daily","timezone":"Mars/Base"}`, `{"type":"noop","timezone":"America/New_York"}`,
	`{"type":"noop","schedule":"\u0000"}`, `{"type":"noop","schedule":"` + strings.Repeat("1,", 5000) + `1 * * * *"}`,
	// names and strings
	`{"name":"someone-else","type":"noop"}`, `{"type":"noop","colour":"red"}`, `{"type":"noop","type":"shell"}`,
	`{"type":"\u0000","group":"\ud800"}`, "{\"type\":\"\xff\xfe\",\"group\":\"g\"}",
	`{"type":"noop","payload":"` + strings.Repeat("x", fuzzMaxPayload) + `"}`,
}

// recordingEngine is the real engine with JobPut's arguments recorded.
type recordingEngine struct {
	Engine
	mu   sync.Mutex
	puts []store.Job
}

func (r *recordingEngine) JobPut(ctx context.Context, j store.Job) (*store.Job, bool, error) {
	r.mu.Lock()
	r.puts = append(r.puts, j)
	r.mu.Unlock()
	return r.Engine.JobPut(ctx, j)
}

func FuzzJobPut(f *testing.F) {
	for _, s := range jobPutSeeds {
		f.Add([]byte(s))
	}
	srv, _ := startJobsServer(f)
	var n int
	f.Fuzz(func(t *testing.T, body []byte) {
		n++
		name := fmt.Sprintf("fz-%d", n)
		eng := &recordingEngine{Engine: srv.eng}
		req := httptest.NewRequest(http.MethodPut, "/api/v1/jobs/"+name, bytes.NewReader(body))
		setJSON(req)
		rec, logged := fuzzServe(eng, req)
		e := checkFuzzAnswer(t, "PUT /api/v1/jobs/"+name, rec, logged)

		get := func() *httptest.ResponseRecorder {
			rec, logged := fuzzServe(eng, httptest.NewRequest(http.MethodGet, "/api/v1/jobs/"+name, nil))
			checkFuzzAnswer(t, "GET /api/v1/jobs/"+name, rec, logged)
			return rec
		}
		if rec.Code >= 300 {
			if len(eng.puts) > 1 {
				t.Fatalf("%d engine calls", len(eng.puts))
			}
			if len(eng.puts) == 1 && rec.Code == http.StatusBadRequest && e.Field == "" {
				t.Fatalf("the engine refused %q without naming a field: %s", body, rec.Body.Bytes())
			}
			if g := get(); g.Code != http.StatusNotFound {
				t.Fatalf("PUT answered %d, yet GET finds the job (%d): %s", rec.Code, g.Code, g.Body.Bytes())
			}
			return
		}
		if rec.Code != http.StatusCreated || len(eng.puts) != 1 {
			t.Fatalf("status %d after %d engine calls: %s", rec.Code, len(eng.puts), rec.Body.Bytes())
		}
		in := eng.puts[0]
		if in.Name != name {
			t.Fatalf("the engine got name %q for %q", in.Name, name)
		}
		if in.Payload != nil {
			var buf bytes.Buffer
			if err := json.Compact(&buf, in.Payload); err != nil || !bytes.Equal(buf.Bytes(), in.Payload) || len(in.Payload) > fuzzMaxPayload || string(in.Payload) == "null" {
				t.Fatalf("payload %q reached the engine", in.Payload)
			}
		}
		if in.Timeout < 0 || in.Type != strings.TrimSpace(in.Type) {
			t.Fatalf("engine got %+v", in)
		}
		var out jobJSON
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Name != name || out.Version != 1 || out.CreatedAt == nil {
			t.Fatalf("answer is not the saved job: %s", rec.Body.Bytes())
		}
		g := get()
		if g.Code != http.StatusOK || !bytes.Equal(g.Body.Bytes(), rec.Body.Bytes()) {
			t.Fatalf("GET after PUT: %d %s\nPUT answered %s", g.Code, g.Body.Bytes(), rec.Body.Bytes())
		}
		// Delete it again so the cron loop does not fire an ever growing
		// number of jobs while fuzzing.
		del, logged := fuzzServe(eng, httptest.NewRequest(http.MethodDelete, "/api/v1/jobs/"+name, nil))
		if del.Code != http.StatusNoContent || logged != "" {
			t.Fatalf("DELETE: %d %s %s", del.Code, del.Body.Bytes(), logged)
		}
	})
}
