package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/e2e/internal/proc"
)

// TestLogFollowResumes follows a printing run's log as Server-Sent Events
// on one server while its worker is connected to another (PostgreSQL; on
// SQLite one server is both), drops the connection halfway, resumes with
// Last-Event-ID and checks that every kept line arrived exactly once, in
// order, followed by the cap's marker and the end event, and that the run
// counts the lines its cap dropped.
func TestLogFollowResumes(t *testing.T) {
	for _, store := range []string{"sqlite", "postgres"} {
		t.Run(store, func(t *testing.T) {
			var (
				follow, work string // the follower's HTTP address, the worker's server's gRPC
			)
			caps := []string{"--log-max-lines", "300", "--heartbeat", "1s"}
			if store == "sqlite" {
				dsn := "sqlite:" + filepath.Join(t.TempDir(), "pluto.db")
				_, follow, work = proc.StartServer(t, "server", append([]string{"--store", dsn}, caps...)...)
			} else {
				dsn := proc.PGURL(t)
				_, _, work = proc.StartServer(t, "server-a", append([]string{"--store", dsn, "--id", "a"}, caps...)...)
				_, follow, _ = proc.StartServer(t, "server-b", append([]string{"--store", dsn, "--id", "b"}, caps...)...)
			}
			w := proc.Start(t, "w1", "worker", "--server", work, "--id", "w1", "--capacity", "1", "--shell")
			w.Await(20*time.Second, "connected")
			a := proc.NewAPI(t, follow)
			var run proc.Run
			cmd := `for i in $(seq 1 400); do echo line-$i; sleep 0.005; done`
			if code := a.Do("POST", "/api/v1/runs", map[string]any{"type": "shell", "group": "default", "payload": map[string]string{"cmd": cmd}}, &run); code != 201 {
				t.Fatalf("submit: HTTP %d", code)
			}
			url := "http://" + follow + "/api/v1/runs/" + run.ID + "/logs?follow=1"
			first, _ := readEvents(t, url, "", 150)
			if len(first) != 150 {
				t.Fatalf("first stream: %d lines before the break", len(first))
			}
			rest, end := readEvents(t, url, first[len(first)-1].id, -1)
			if end == "" {
				t.Fatal("the resumed stream did not end with an end event")
			}
			all := append(first, rest...)
			if len(all) != 301 {
				t.Fatalf("%d lines in all, want 300 and the marker", len(all))
			}
			for i, e := range all[:300] {
				if want := fmt.Sprintf("line-%d", i+1); e.text != want {
					t.Fatalf("line %d is %q, want %q (lost or repeated around the break)", i, e.text, want)
				}
			}
			if m := all[300]; m.stream != "log" || !strings.Contains(m.text, "log capped at 300 lines") {
				t.Errorf("last line %+v, want the cap's marker", m)
			}
			var got struct {
				Status  string `json:"status"`
				Dropped int64  `json:"log_lines_dropped"`
			}
			a.Do("GET", "/api/v1/runs/"+run.ID, nil, &got)
			if got.Status != "succeeded" || got.Dropped != 100 {
				t.Errorf("run %+v, want succeeded with 100 lines dropped", got)
			}
		})
	}
}

// followed is one line event of a follow stream.
type followed struct {
	id, stream, text string
}

// readEvents follows url as an event stream (resuming after lastID when
// set) and returns its lines, up to max (-1: until the stream ends), and
// the end event's data ("" if the stream did not end with one).
func readEvents(t *testing.T, url, lastID string, max int) (lines []followed, end string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	if tok := proc.Token(t); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	c := &http.Client{Timeout: 2 * time.Minute}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close() // a break: the server sees the connection go
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("follow: HTTP %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 0, 256<<10), 1<<20)
	var id, event, data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if event == "end" {
				return lines, data
			}
			if data != "" {
				var l proc.LogLine
				if err := json.Unmarshal([]byte(data), &l); err != nil {
					t.Fatalf("event %q: %v", data, err)
				}
				if strconv.FormatInt(l.Seq, 10) != id {
					t.Fatalf("event id %q for line %d", id, l.Seq)
				}
				lines = append(lines, followed{id: id, stream: l.Stream, text: l.Text})
				if len(lines) == max {
					return lines, ""
				}
			}
			id, event, data = "", "", ""
		case strings.HasPrefix(line, "id: "):
			id = line[4:]
		case strings.HasPrefix(line, "event: "):
			event = line[7:]
		case strings.HasPrefix(line, "data: "):
			data += line[6:]
		}
	}
	return lines, ""
}
