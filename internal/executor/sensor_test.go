package executor

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/worker"
)

func sensorRun(t *testing.T, typ string, p SensorPayload, logical, created time.Time) *worker.Run {
	t.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return worker.NewTestRun(worker.TestRun{Type: typ, Job: "wait", Payload: b, LogicalTime: logical, CreatedAt: created})
}

// A file sensor pokes until its path, rendered from the run's logical
// time in the payload's time zone, exists; past its timeout it fails for
// good.
func TestFileSensor(t *testing.T) {
	dir := t.TempDir()
	day := time.Date(2026, 11, 20, 18, 0, 0, 0, time.UTC) // the 21st in Shanghai
	p := SensorPayload{Path: dir + `/{{.LogicalTime | date "2006-01-02"}}/_SUCCESS`, Poke: "2m", Timezone: "Asia/Shanghai"}
	s := FileSensor()
	err := s.ProcessRun(context.Background(), sensorRun(t, TypeFileSensor, p, day, time.Now()))
	if d, ok := worker.PokeAfter(err); !ok || d != 2*time.Minute {
		t.Fatalf("no file: %v, want a poke in 2m", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "2026-11-21"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "2026-11-21", "_SUCCESS"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.ProcessRun(context.Background(), sensorRun(t, TypeFileSensor, p, day, time.Now())); err != nil {
		t.Fatalf("with the file: %v", err)
	}
	p.Path, p.Timeout = dir+"/never", "1h"
	err = s.ProcessRun(context.Background(), sensorRun(t, TypeFileSensor, p, day, time.Now().Add(-2*time.Hour)))
	if _, poke := worker.PokeAfter(err); poke || !worker.IsNoRetry(err) || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("past its timeout: %v, want a failure without retries", err)
	}
}

// Payload mistakes fail at once, naming the field: no path, a bad
// duration, a template over a run without a logical time.
func TestSensorPayloadErrors(t *testing.T) {
	for _, c := range []struct {
		p    SensorPayload
		want string
	}{
		{SensorPayload{}, "payload.path"},
		{SensorPayload{Path: "/x", Poke: "soon"}, "payload.poke"},
		{SensorPayload{Path: `/x/{{.LogicalTime | date "2006"}}`}, "no logical time"},
		{SensorPayload{Path: `/x/{{.Nope}}`}, "payload.path"},
		{SensorPayload{Path: `/x`, Timezone: "Mars/Olympus", Poke: "1s"}, ""},
	} {
		err := FileSensor().ProcessRun(context.Background(), sensorRun(t, TypeFileSensor, c.p, time.Time{}, time.Now()))
		if c.want == "" {
			if _, ok := worker.PokeAfter(err); !ok {
				t.Errorf("%+v: %v, want a poke (no template, the zone unused)", c.p, err)
			}
			continue
		}
		if err == nil || !worker.IsNoRetry(err) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want a failure without retries naming %q", c.p, err, c.want)
		}
	}
}

// An http sensor is done on a 2xx and pokes otherwise; a destination the
// policy refuses is a failure, not a poke.
func TestHTTPSensor(t *testing.T) {
	status := http.StatusNotFound
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(status) }))
	defer srv.Close()
	s := HTTPSensor(httpAllow(t, "127.0.0.1/32"))
	p := SensorPayload{URL: srv.URL + "/ready", Poke: "5s"}
	if _, ok := worker.PokeAfter(s.ProcessRun(context.Background(), sensorRun(t, TypeHTTPSensor, p, time.Time{}, time.Now()))); !ok {
		t.Fatal("404: want a poke")
	}
	status = http.StatusNoContent
	if err := s.ProcessRun(context.Background(), sensorRun(t, TypeHTTPSensor, p, time.Time{}, time.Now())); err != nil {
		t.Fatalf("204: %v", err)
	}
	err := HTTPSensor(nil).ProcessRun(context.Background(), sensorRun(t, TypeHTTPSensor, p, time.Time{}, time.Now()))
	if err == nil || !worker.IsNoRetry(err) {
		t.Fatalf("loopback without an allow-list: %v, want a refusal", err)
	}
}
