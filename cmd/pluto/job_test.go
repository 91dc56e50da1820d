package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/internal/server"
)

// startTestServer runs a whole server in-process on SQLite and returns the
// environment that points the CLI at it.
func startTestServer(t *testing.T) map[string]string {
	t.Helper()
	tokenFile := filepath.Join(t.TempDir(), "admin.token")
	s, err := server.Start(context.Background(), server.Config{
		Store:    "sqlite:" + filepath.Join(t.TempDir(), "pluto.db"),
		HTTPAddr: "127.0.0.1:0",
		GRPCAddr: "127.0.0.1:0",
		Logger:   slog.New(slog.DiscardHandler),
		Auth:     server.AuthConfig{AdminTokenFile: tokenFile, BootstrapOut: io.Discard},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{envServer: s.HTTPURL(), envToken: strings.TrimSpace(string(token))}
}

// fields is a table row as its whitespace-separated cells.
func fields(line string) string { return strings.Join(strings.Fields(line), " ") }

func TestJobCommands(t *testing.T) {
	env := startTestServer(t)
	ctx := context.Background()
	dir := t.TempDir()

	// apply: YAML with several documents from standard input.
	yamlJobs := `name: every-minute
type: shell
payload: {cmd: "echo hi"}
schedule: "0 0/1 * * * ?"
overlap: forbid
---
name: nightly
type: noop
group: batch
schedule: "30 2 * * *"
timezone: Asia/Shanghai
misfire: once
timeout: 2h
retries: 3
`
	r := runCLICtx(t, ctx, env, yamlJobs, "job", "apply", "-f", "-")
	if r.code != 0 || r.stdout != "job every-minute created\njob nightly created\n" {
		t.Fatalf("apply yaml: %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = runCLICtx(t, ctx, env, yamlJobs, "job", "apply", "-f", "-")
	if r.code != 0 || r.stdout != "job every-minute configured\njob nightly configured\n" {
		t.Fatalf("apply yaml again: %d %q %q", r.code, r.stdout, r.stderr)
	}

	// apply: a JSON list from a file, -o json.
	jsonFile := filepath.Join(dir, "jobs.json")
	if err := os.WriteFile(jsonFile, []byte(`[{"name":"adhoc","type":"noop","payload":{"n":1}},
		{"name":"nightly","type":"noop","group":"batch","schedule":"30 2 * * *","timezone":"Asia/Shanghai","misfire":"once","paused":true}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, env, "job", "apply", "-f", jsonFile, "-o", "json")
	var applied struct{ Items []apiJob }
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &applied) != nil || len(applied.Items) != 2 ||
		applied.Items[0].Name != "adhoc" || applied.Items[1].Version != 3 || !applied.Items[1].Paused {
		t.Fatalf("apply json: %d %q %q", r.code, r.stdout, r.stderr)
	}

	// An unknown field is named, and nothing in the file is applied.
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("name: fresh\ntype: noop\n---\nname: other\ntype: noop\nschedul: '@daily'\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, env, "job", "apply", "-f", bad)
	if r.code != 1 || !strings.Contains(r.stderr, `job "other" (document 2): schedul: unknown field "schedul"`) || r.stdout != "" {
		t.Errorf("unknown field: %d %q %q", r.code, r.stdout, r.stderr)
	}
	if r = runCLI(t, env, "job", "get", "fresh"); r.code != 1 || !strings.Contains(r.stderr, "job fresh not found") {
		t.Errorf("a job of a file with an unknown field was applied: %d %q %q", r.code, r.stdout, r.stderr)
	}

	// The server refuses the second job: the first stays applied.
	r = runCLICtx(t, ctx, env, "name: fresh\ntype: noop\n---\nname: broken\ntype: noop\nschedule: '0 0 25 * * ?'\n---\nname: never-sent\ntype: noop\n", "job", "apply", "-f", "-")
	if r.code != 1 || r.stdout != "job fresh created\n" || !strings.Contains(r.stderr, `job "broken" (document 2) in standard input: schedule: cron: field 3 (hour) "25"`) ||
		!strings.Contains(r.stderr, "the 1 job(s) before it were applied") {
		t.Errorf("server refusal: %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, env, "job", "apply", "-f", "-", "--server", env[envServer])
	if r.code != 1 || !strings.Contains(r.stderr, "empty") {
		t.Errorf("empty stdin: %d %q", r.code, r.stderr)
	}
	r = runCLICtx(t, ctx, env, "name: z\ntype: noop\ntimezone: Mars/Base\nschedule: '@daily'\n", "job", "apply", "-f", "-")
	if r.code != 1 || !strings.Contains(r.stderr, "timezone") || !strings.Contains(r.stderr, "nothing was applied") {
		t.Errorf("bad zone: %d %q", r.code, r.stderr)
	}

	// ls
	r = runCLI(t, env, "job", "ls")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 5 || fields(lines[0]) != "NAME SCHEDULE TZ NEXT_FIRE PAUSED MISFIRE OVERLAP" {
		t.Fatalf("ls: %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	want := []*regexp.Regexp{
		regexp.MustCompile(`^adhoc - UTC - false skip allow$`),
		regexp.MustCompile(`^every-minute 0 0/1 \* \* \* \? UTC \d{4}-\d\d-\d\dT\d\d:\d\d:00Z false skip forbid$`),
		regexp.MustCompile(`^fresh - UTC - false skip allow$`),
		regexp.MustCompile(`^nightly 30 2 \* \* \* Asia/Shanghai - true once allow$`),
	}
	for i, re := range want {
		if !re.MatchString(fields(lines[i+1])) {
			t.Errorf("ls row %d %q does not match %v", i+1, fields(lines[i+1]), re)
		}
	}
	r = runCLI(t, env, "job", "ls", "-o", "json")
	var list struct{ Items []apiJob }
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &list) != nil || len(list.Items) != 4 {
		t.Errorf("ls json: %d %q", r.code, r.stdout)
	}

	// get
	r = runCLI(t, env, "job", "get", "every-minute")
	if r.code != 0 || !strings.Contains(r.stdout, "0 0/1 * * * ?") || !strings.Contains(r.stdout, `{"cmd":"echo hi"}`) || !strings.Contains(r.stdout, "forbid") {
		t.Errorf("get: %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, env, "job", "get", "nightly", "-o", "json")
	var j map[string]any
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &j) != nil || len(j) != 26 || j["timezone"] != "Asia/Shanghai" {
		t.Errorf("get json: %d %q", r.code, r.stdout)
	}

	// pause / resume
	r = runCLI(t, env, "job", "pause", "every-minute")
	if r.code != 0 || r.stdout != "job every-minute paused\n" {
		t.Errorf("pause: %d %q %q", r.code, r.stdout, r.stderr)
	}
	if r = runCLI(t, env, "job", "get", "every-minute", "-o", "json"); !strings.Contains(r.stdout, `"paused": true`) {
		t.Errorf("after pause: %q", r.stdout)
	}
	r = runCLI(t, env, "job", "resume", "nightly")
	if r.code != 0 || !regexp.MustCompile(`^job nightly resumed; next fire \d{4}-\d\d-\d\dT18:30:00Z\n$`).MatchString(r.stdout) {
		t.Errorf("resume: %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, env, "job", "resume", "nightly", "-o", "json")
	if r.code != 0 || !strings.Contains(r.stdout, `"paused": false`) {
		t.Errorf("resume json: %d %q", r.code, r.stdout)
	}

	// trigger: prints the run id; --payload replaces the payload.
	r = runCLI(t, env, "job", "trigger", "adhoc")
	id1 := strings.TrimSpace(r.stdout)
	if r.code != 0 || !strings.HasPrefix(id1, "r_") || strings.Contains(id1, "\n") {
		t.Fatalf("trigger: %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, env, "job", "trigger", "adhoc", "--payload", `{"n": 2}`, "-o", "json")
	var run apiRun
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &run) != nil || compactJSON(run.Payload) != `{"n":2}` || run.Job == nil || *run.Job != "adhoc" {
		t.Fatalf("trigger --payload: %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, env, "run", "get", id1, "-o", "json")
	if r.code != 0 || !strings.Contains(r.stdout, `"job": "adhoc"`) || !strings.Contains(r.stdout, `"n": 1`) {
		t.Errorf("triggered run: %d %q", r.code, r.stdout)
	}
	r = runCLI(t, env, "run", "ls", "--job", "adhoc", "-o", "json")
	var runs struct{ Items []apiRun }
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &runs) != nil || len(runs.Items) != 2 {
		t.Errorf("run ls --job: %d %q", r.code, r.stdout)
	}
	// No worker runs noop here: --wait gives up at its timeout.
	r = runCLI(t, env, "job", "trigger", "adhoc", "--wait", "--wait-timeout", "200ms")
	if r.code != 1 || !strings.Contains(r.stderr, "timed out waiting") || !strings.Contains(r.stdout, "adhoc") {
		t.Errorf("trigger --wait: %d %q %q", r.code, r.stdout, r.stderr)
	}

	// rm
	r = runCLI(t, env, "job", "rm", "adhoc")
	if r.code != 0 || r.stdout != "job adhoc deleted\n" {
		t.Errorf("rm: %d %q %q", r.code, r.stdout, r.stderr)
	}
	for _, args := range [][]string{{"get", "adhoc"}, {"rm", "adhoc"}, {"pause", "adhoc"}, {"resume", "adhoc"}, {"trigger", "adhoc"}} {
		r = runCLI(t, env, append([]string{"job"}, args...)...)
		if r.code != 1 || !strings.Contains(r.stderr, "job adhoc not found") {
			t.Errorf("%v after rm: %d %q", args, r.code, r.stderr)
		}
	}
	// The runs stay.
	if r = runCLI(t, env, "run", "get", id1); r.code != 0 {
		t.Errorf("run of a deleted job: %d %q", r.code, r.stderr)
	}

	// The example file applies as it is.
	r = runCLI(t, env, "job", "apply", "-f", filepath.Join("..", "..", "examples", "jobs.yaml"))
	if r.code != 0 || r.stdout != "job heartbeat created\njob nightly-report created\njob reindex created\n" {
		t.Errorf("examples/jobs.yaml: %d %q %q", r.code, r.stdout, r.stderr)
	}
}

func TestJobUsageErrors(t *testing.T) {
	f := newFakeAPI(t)
	env := envFor(f)
	for _, args := range [][]string{
		{"job", "bogus"},
		{"job", "apply"},
		{"job", "apply", "-f", "/does/not/exist.yaml"},
		{"job", "apply", "-f", "x.yaml", "extra"},
		{"job", "get"},
		{"job", "get", "a", "b"},
		{"job", "pause"},
		{"job", "resume"},
		{"job", "rm"},
		{"job", "ls", "extra"},
		{"job", "trigger"},
		{"job", "trigger", "a", "--payload", "{bad"},
		{"job", "trigger", "a", "--wait-timeout", "-1s"},
		{"job", "ls", "-o", "yaml"},
	} {
		r := runCLI(t, env, args...)
		if r.code != 2 || !strings.HasPrefix(r.stderr, "pluto: ") {
			t.Errorf("%v: exit %d, want 2 (stderr %q)", args, r.code, r.stderr)
		}
	}
	if n := len(f.reqs()); n != 0 {
		t.Errorf("usage errors sent %d requests: %+v", n, f.reqs())
	}
	for _, args := range [][]string{{"job"}, {"job", "--help"}, {"job", "apply", "--help"}, {"job", "trigger", "--help"}} {
		r := runCLI(t, nil, args...)
		if r.code != 0 || !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("%v: %d %q", args, r.code, r.stdout)
		}
	}
	if r := runCLI(t, nil, "job", "apply", "--help"); !strings.Contains(r.stdout, "stay applied") {
		t.Errorf("apply help does not say what happens on an error:\n%s", r.stdout)
	}
}
