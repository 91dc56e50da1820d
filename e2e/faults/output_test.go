package faults

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/e2e/internal/proc"
)

// garbageBound is how long the runs of TestWorkerBinaryOutput have, from
// their submission, to be terminal (a few seconds when nothing breaks).
const garbageBound = 45 * time.Second

// TestWorkerBinaryOutput: one `pluto worker --shell` runs commands that
// print megabytes of binary garbage (no newlines for long stretches,
// invalid UTF-8, NUL bytes), a 200 KiB line without a newline and a few
// invalid bytes, mixed with ordinary runs. Handler output is bytes
// (docs/api.md: LogLine.text): the worker must neither crash nor lose its
// stream over it; every run succeeds (the commands exit 0); the logs
// endpoint returns each run's output, as valid UTF-8 with invalid
// sequences and NULs replaced by U+FFFD and long lines split, nothing
// else lost; the ordinary runs are unaffected.
//
// The worker is restarted if it exits (as systemd would, at most three
// times), so that a crash shows as worker_exits in the summary and the
// scenario still reports what happened to the runs.
func TestWorkerBinaryOutput(t *testing.T) {
	s := newScenario(t, "worker-binary-output")
	// The per-run log caps are raised so that every line can be counted
	// (the caps themselves are tested in e2e/logs_test.go).
	_, httpAddr, grpcAddr := proc.StartServer(t, "server", s.serverArgs("", "--heartbeat", "1s",
		"--log-max-lines", "1000000", "--log-max-bytes", "64MiB")...)
	a := proc.NewAPI(t, httpAddr)
	wargs := []string{"worker", "--server", grpcAddr, "--id", "w1", "--shell", "--capacity", "4"}
	workers := []*proc.Proc{proc.Start(t, "w1", wargs...)}
	workers[0].Await(30*time.Second, "msg=connected")

	// 4 MB of random bytes from a file the test keeps, so that the logs
	// can be checked line by line.
	random := make([]byte, 4_000_000)
	rand.Read(random)
	randomFile := filepath.Join(s.dir, "random.bin")
	if err := os.WriteFile(randomFile, random, 0o644); err != nil {
		t.Fatal(err)
	}
	longLine := 200 << 10
	type check func(t *testing.T, lines []proc.LogLine)
	garbage := []struct {
		name, cmd string
		check     check
	}{
		{"random-4MB-file", "cat " + randomFile, func(t *testing.T, lines []proc.LogLine) {
			checkSanitised(t, stdout(lines), random)
		}},
		{"urandom-4MB", "head -c 4000000 /dev/urandom", func(t *testing.T, lines []proc.LogLine) {
			if n := len(stdout(lines)); n < 1000 {
				t.Errorf("%d stdout lines for 4 MB of random bytes, want about 15600 (one per newline byte)", n)
			}
		}},
		{"urandom-stderr-1MB", "head -c 1000000 /dev/urandom >&2", func(t *testing.T, lines []proc.LogLine) {
			if n := len(streamLines(lines, "stderr")); n < 1000 {
				t.Errorf("%d stderr lines for 1 MB of random bytes, want about 3900", n)
			}
		}},
		{"invalid-byte", `printf 'a\377b'`, func(t *testing.T, lines []proc.LogLine) {
			if got := strings.Join(stdout(lines), "\n"); got != "a\uFFFDb" {
				t.Errorf("logs %q, want %q", got, "a\uFFFDb")
			}
		}},
		{"nul-bytes", `printf 'x\000y\n\000\n'`, func(t *testing.T, lines []proc.LogLine) {
			if got := strings.Join(stdout(lines), "\n"); got != "x\uFFFDy\n\uFFFD" {
				t.Errorf("logs %q, want %q", got, "x\uFFFDy\n\uFFFD")
			}
		}},
		// A 200 KiB line without a newline, written at once, and written
		// in 4 KiB pieces (as a program flushing its buffer does): the
		// worker then reads it in pieces whose sum reaches 64 KiB exactly.
		{"line-200KiB-no-newline", fmt.Sprintf(`head -c %d /dev/zero | tr '\000' x`, longLine), checkLongLine(longLine)},
		{"line-200KiB-in-4KiB-writes", fmt.Sprintf(`for i in $(seq %d); do head -c 4096 /dev/zero | tr '\000' x; done`, longLine/4096), checkLongLine(longLine)},
	}

	// The runs, garbage and ordinary interleaved, submitted in one batch.
	var specs []map[string]any
	var names []string
	for i, g := range garbage {
		r := s.shell("0")
		r["payload"].(map[string]string)["cmd"] += "; " + g.cmd
		specs, names = append(specs, r), append(names, g.name)
		for j := range 3 {
			r := s.shell("0")
			r["payload"].(map[string]string)["cmd"] += fmt.Sprintf("; echo ordinary-%d-%d", i, j)
			specs, names = append(specs, r), append(names, fmt.Sprintf("ordinary-%d-%d", i, j))
		}
	}
	var batch struct{ Items []proc.Run }
	submitted := time.Now()
	if code := a.Do("POST", "/api/v1/runs", map[string]any{"runs": specs}, &batch); code != 201 || len(batch.Items) != len(specs) {
		t.Fatalf("submit: HTTP %d, %d runs", code, len(batch.Items))
	}
	byName := map[string]string{}
	for i, r := range batch.Items {
		byName[names[i]] = r.ID
		s.ack(r.ID)
	}

	// Wait for every run to be terminal, restarting the worker if it exits.
	exits := 0
	var runs map[string]proc.Run
	deadline := submitted.Add(garbageBound)
	for {
		if w := workers[len(workers)-1]; exited(w) && len(workers) == exits+1 {
			exits++
			t.Logf("the worker exited (%d): %s", exits, lastLines(w, 6))
			if exits <= 3 {
				workers = append(workers, proc.Start(t, fmt.Sprintf("w1-restart%d", exits), wargs...))
			}
		}
		all, err := a.List("")
		if err != nil {
			t.Fatalf("listing runs: %v", err)
		}
		runs = map[string]proc.Run{}
		pending := 0
		for _, r := range all {
			runs[r.ID] = r
			if !r.Terminal() {
				pending++
			}
		}
		if pending == 0 {
			s.recovery("all_done", time.Since(submitted))
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("NOT TERMINAL: %d runs not terminal %v after their submission", pending, garbageBound)
			s.metric("not_terminal", pending)
			break
		}
		time.Sleep(100 * time.Millisecond) // polling another process's state
	}

	// The worker: one process, one stream.
	connects, disconnects := 0, 0
	for _, w := range workers {
		connects += len(w.Lines("msg=connected"))
		disconnects += len(w.Lines("disconnected from server")) + len(w.Lines("cannot connect to server"))
	}
	s.metric("worker_exits", exits)
	s.metric("worker_connects", connects)
	s.metric("worker_disconnects", disconnects)
	if exits > 0 {
		t.Errorf("the worker exited %d times (it must survive any output)", exits)
	}
	if connects != 1 || disconnects != 0 {
		t.Errorf("the worker connected %d times and lost its stream %d times, want once and never", connects, disconnects)
	}

	// Every run's logs, as the API returns them.
	logBytes := 0
	for _, name := range names {
		id := byName[name]
		r := runs[id]
		lines, raw, err := a.Logs(id)
		if err != nil {
			t.Errorf("%s (%s): logs: %v", name, id, err)
			continue
		}
		logBytes += raw
		lines = attemptLines(lines, r.Attempt) // a run executed again has the lines of each attempt
		t.Run(name, func(t *testing.T) {
			if r.Status != "succeeded" {
				t.Errorf("%s: %s at attempt %d (error %q), want succeeded", id, r.Status, r.Attempt, proc.Deref(r.Error))
			} else if r.Attempt != 1 {
				t.Errorf("%s: succeeded at attempt %d: it ran again, want once", id, r.Attempt)
			}
			var res struct {
				ExitCode int    `json:"exit_code"`
				Stdout   string `json:"stdout"`
			}
			if r.Status == "succeeded" {
				if err := json.Unmarshal(r.Result, &res); err != nil || res.ExitCode != 0 {
					t.Errorf("%s: result %.200s: exit code %d, %v", id, r.Result, res.ExitCode, err)
				}
			}
			for _, l := range lines {
				if strings.IndexByte(l.Text, 0) >= 0 {
					t.Errorf("%s: a log line holds a NUL byte", id)
					break
				}
			}
			for _, g := range garbage {
				if g.name == name {
					g.check(t, lines)
					return
				}
			}
			// An ordinary run: its one line, and its result.
			want := strings.TrimPrefix(name, "ordinary-")
			if got := stdout(lines); len(got) != 1 || got[0] != "ordinary-"+want {
				t.Errorf("%s: stdout lines %q, want [ordinary-%s]", id, got, want)
			}
			if r.Status == "succeeded" && res.Stdout != "ordinary-"+want+"\n" {
				t.Errorf("%s: result stdout %q", id, res.Stdout)
			}
		})
	}
	s.metric("log_bytes_served", logBytes)
	s.verdict(runs)
}

// checkSanitised compares the stdout log lines of a run that printed raw
// with raw split into lines: each line's valid UTF-8 must survive, and
// whatever was invalid (or NUL) must have become U+FFFD — one per byte or
// one per run of bad bytes, either is fine.
func checkSanitised(t *testing.T, got []string, raw []byte) {
	t.Helper()
	want := bytes.Split(bytes.TrimSuffix(raw, []byte("\n")), []byte("\n"))
	if len(got) != len(want) {
		t.Errorf("%d stdout lines, want %d (one per line of the output)", len(got), len(want))
	}
	strip := func(s string) string { return strings.ReplaceAll(s, "\uFFFD", "") }
	bad := 0
	for i := range min(len(got), len(want)) {
		w := bytes.TrimSuffix(want[i], []byte("\r"))
		ws := strings.ReplaceAll(strings.ToValidUTF8(string(w), "\uFFFD"), "\x00", "\uFFFD")
		if strip(got[i]) != strip(ws) || (strings.Contains(ws, "\uFFFD") != strings.Contains(got[i], "\uFFFD")) {
			if bad++; bad <= 3 {
				t.Errorf("line %d: got %q, want %q", i, trunc(got[i]), trunc(ws))
			}
		}
	}
	if bad > 3 {
		t.Errorf("%d lines differ", bad)
	}
}

// checkLongLine checks the stdout log lines of a run that printed a line
// of n x's without a newline: all of it, in lines of at most 64 KiB.
func checkLongLine(n int) func(t *testing.T, lines []proc.LogLine) {
	return func(t *testing.T, lines []proc.LogLine) {
		t.Helper()
		out := stdout(lines)
		total := 0
		for _, l := range out {
			if len(l) > 64<<10 || strings.Trim(l, "x") != "" {
				t.Errorf("a line of %d bytes (%q…): want lines of at most 64 KiB of x", len(l), l[:min(len(l), 16)])
			}
			total += len(l)
		}
		if total != n {
			t.Errorf("%d bytes of the line in %d log lines, want all %d", total, len(out), n)
		}
	}
}

func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

func attemptLines(lines []proc.LogLine, attempt int) []proc.LogLine {
	var out []proc.LogLine
	for _, l := range lines {
		if l.Attempt == attempt {
			out = append(out, l)
		}
	}
	return out
}

func stdout(lines []proc.LogLine) []string { return streamLines(lines, "stdout") }

func streamLines(lines []proc.LogLine, stream string) []string {
	var out []string
	for _, l := range lines {
		if l.Stream == stream {
			out = append(out, l.Text)
		}
	}
	return out
}

func exited(p *proc.Proc) bool {
	select {
	case <-p.Exited():
		return true
	default:
		return false
	}
}

// lastLines is the process's exit code and its last n log lines that
// are not a goroutine dump's frames.
func lastLines(p *proc.Proc, n int) string {
	log := strings.Split(p.Log(), "\n")
	var keep []string
	for _, l := range log {
		if strings.HasPrefix(l, "panic:") || strings.HasPrefix(l, "fatal error:") || strings.HasPrefix(l, "level=") || strings.HasPrefix(l, "time=") {
			keep = append(keep, l)
		}
	}
	if len(keep) > n {
		keep = keep[len(keep)-n:]
	}
	return fmt.Sprintf("exit code %d; %s", p.Cmd.ProcessState.ExitCode(), strings.Join(keep, " | "))
}
