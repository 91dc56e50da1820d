package storetest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pluto-sched/pluto/internal/store"
)

// appendLogs appends p in one transaction and returns its result.
func appendLogs(t *testing.T, s store.Store, p store.LogAppendParams) store.LogAppendResult {
	t.Helper()
	var res store.LogAppendResult
	err := s.LogTx(ctx, func(tx store.LogTx) error {
		var err error
		res, err = tx.LogAppend(ctx, p)
		return err
	})
	if err != nil {
		t.Fatalf("LogTx: %v", err)
	}
	return res
}

func logList(t *testing.T, s store.Store, p store.LogListParams) []store.LogEntry {
	t.Helper()
	got, err := s.LogList(ctx, p)
	if err != nil {
		t.Fatalf("LogList(%+v): %v", p, err)
	}
	return got
}

func logStats(t *testing.T, s store.Store, id string) store.LogStats {
	t.Helper()
	c, err := s.LogStats(ctx, id)
	if err != nil {
		t.Fatalf("LogStats(%q): %v", id, err)
	}
	return c
}

// texts are the texts of entries.
func texts(es []store.LogEntry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Text
	}
	return out
}

// lines are n stdout lines of run id, attempt, texts prefix0, prefix1, ….
func lines(id string, attempt, n int, prefix string) []store.LogLine {
	out := make([]store.LogLine, n)
	for i := range out {
		out[i] = store.LogLine{RunID: id, Attempt: attempt, Time: t0, Stream: "stdout", Text: fmt.Sprint(prefix, i)}
	}
	return out
}

func testLogs(t *testing.T, s store.Store) {
	insert(t, s, params("r1"), params("r2"))
	claimAll(t, s)
	ns := time.Date(2026, 1, 2, 3, 4, 5, 678901234, time.UTC)
	lines := []store.LogLine{
		{RunID: "r1", Attempt: 1, Time: ns, Stream: "stdout", Text: "one"},
		{RunID: "r2", Attempt: 1, Time: ns, Stream: "stdout", Text: "other"},
		{RunID: "r1", Attempt: 1, Time: ns.Add(time.Millisecond), Stream: "stderr", Text: "two\twith tab"},
		{RunID: "r1", Attempt: 1, Time: ns.Add(2 * time.Millisecond), Stream: "log", Level: "warn", Text: "three ✓"},
		{RunID: "r1", Attempt: 1, Time: ns, Stream: "stdout", Text: ""},
	}
	if res := appendLogs(t, s, store.LogAppendParams{Lines: lines[:2]}); res.Dropped != 0 || res.Fenced != 0 || len(res.Capped) != 0 {
		t.Errorf("uncapped append: %+v", res)
	}
	appendLogs(t, s, store.LogAppendParams{Lines: lines[2:]})
	got := logList(t, s, store.LogListParams{RunID: "r1"})
	want := []store.LogLine{lines[0], lines[2], lines[3], lines[4]}
	if len(got) != len(want) {
		t.Fatalf("got %d lines, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		w := want[i]
		w.Time = w.Time.Truncate(time.Microsecond)
		if d := cmp.Diff(w, got[i].LogLine); d != "" {
			t.Errorf("line %d (-want +got):\n%s", i, d)
		}
		if i > 0 && got[i].Seq <= got[i-1].Seq {
			t.Errorf("line %d: Seq %d not after %d", i, got[i].Seq, got[i-1].Seq)
		}
	}
	after := logList(t, s, store.LogListParams{RunID: "r1", After: got[1].Seq})
	if len(after) != 2 || after[0].Seq != got[2].Seq || after[1].Seq != got[3].Seq {
		t.Errorf("After %d: got %+v", got[1].Seq, after)
	}
	limited := logList(t, s, store.LogListParams{RunID: "r1", After: got[0].Seq, Limit: 2})
	if len(limited) != 2 || limited[0].Seq != got[1].Seq {
		t.Errorf("Limit 2 after first: got %+v", limited)
	}
	if rest := logList(t, s, store.LogListParams{RunID: "r1", After: got[3].Seq}); len(rest) != 0 {
		t.Errorf("after the last line: %+v", rest)
	}
	if other := logList(t, s, store.LogListParams{RunID: "r2"}); len(other) != 1 || other[0].Text != "other" {
		t.Errorf("r2 lines: %+v", other)
	}
	if none := logList(t, s, store.LogListParams{RunID: "nope"}); len(none) != 0 {
		t.Errorf("unknown run: %+v", none)
	}
	bytes := int64(len("one") + len("two\twith tab") + len("three ✓"))
	if c := logStats(t, s, "r1"); c != (store.LogStats{Lines: 4, Bytes: bytes}) {
		t.Errorf("r1 stats %+v, want 4 lines, %d bytes", c, bytes)
	}
	if c := logStats(t, s, "nope"); c != (store.LogStats{}) {
		t.Errorf("unknown run's stats %+v", c)
	}
}

func testLogsDefaultLimit(t *testing.T, s store.Store) {
	insert(t, s, params("r1"))
	claimAll(t, s)
	appendLogs(t, s, store.LogAppendParams{Lines: lines("r1", 1, 1005, "")})
	got := logList(t, s, store.LogListParams{RunID: "r1"})
	if len(got) != 1000 || got[0].Text != "0" || got[999].Text != "999" {
		t.Fatalf("default limit: %d lines", len(got))
	}
	rest := logList(t, s, store.LogListParams{RunID: "r1", After: got[999].Seq})
	if len(rest) != 5 || rest[0].Text != "1000" {
		t.Errorf("rest: %d lines", len(rest))
	}
}

// Only the run's current attempt writes its log: lines of another
// attempt, of a run never claimed or of an unknown run are fenced.
func testLogsFenced(t *testing.T, s store.Store) {
	insert(t, s, params("r1"), params("idle"))
	claim(t, s, store.RunClaimParams{Group: "g", Types: []string{"t"}, Limit: 1, ServerID: "srv"})
	res := appendLogs(t, s, store.LogAppendParams{Lines: []store.LogLine{
		{RunID: "r1", Attempt: 1, Time: t0, Stream: "stdout", Text: "kept"},
		{RunID: "r1", Attempt: 2, Time: t0, Stream: "stdout", Text: "future attempt"},
		{RunID: "r1", Attempt: 0, Time: t0, Stream: "stdout", Text: "no attempt"},
		{RunID: "idle", Attempt: 1, Time: t0, Stream: "stdout", Text: "never claimed"},
		{RunID: "ghost", Attempt: 1, Time: t0, Stream: "stdout", Text: "unknown run"},
	}, MaxLines: 100})
	if res.Fenced != 4 || res.Dropped != 0 {
		t.Errorf("result %+v, want 4 fenced, none dropped", res)
	}
	if !finishOne(t, s, store.RunFinishParams{ID: "r1", Attempt: 1, Status: store.StatusQueued, Now: t0}) {
		t.Fatal("hand-back rejected")
	}
	claimAll(t, s) // r1 attempt 2, idle attempt 1
	res = appendLogs(t, s, store.LogAppendParams{Lines: []store.LogLine{
		{RunID: "r1", Attempt: 1, Time: t0, Stream: "stdout", Text: "late line of the lost attempt"},
		{RunID: "r1", Attempt: 2, Time: t0, Stream: "stdout", Text: "second attempt"},
	}})
	if res.Fenced != 1 {
		t.Errorf("result %+v, want 1 fenced", res)
	}
	if got, want := texts(logList(t, s, store.LogListParams{RunID: "r1"})), []string{"kept", "second attempt"}; !slices.Equal(got, want) {
		t.Errorf("r1 log %q, want %q", got, want)
	}
	for _, id := range []string{"idle", "ghost"} {
		if got := logList(t, s, store.LogListParams{RunID: id}); len(got) != 0 {
			t.Errorf("%s log %+v, want none", id, got)
		}
	}
}

// checkMarker checks that e is the cap marker of run id.
func checkMarker(t *testing.T, e store.LogEntry, id string, maxLines, maxBytes int64) {
	t.Helper()
	if e.RunID != id || e.Stream != "log" || e.Level != "warn" || e.Text != store.LogCapMarker(maxLines, maxBytes) {
		t.Errorf("marker line %+v, want stream log, level warn, %q", e, store.LogCapMarker(maxLines, maxBytes))
	}
}

// The line cap keeps the first lines, stores one marker when the first
// line is dropped, counts the dropped ones across calls and leaves other
// runs alone.
func testLogsCapLines(t *testing.T, s store.Store) {
	insert(t, s, params("r1"), params("r2"))
	claimAll(t, s)
	const maxBytes = 1 << 20
	in := append(lines("r1", 1, 5, "a"), lines("r2", 1, 2, "b")...)
	res := appendLogs(t, s, store.LogAppendParams{Lines: in, MaxLines: 3, MaxBytes: maxBytes})
	if res.Dropped != 2 || res.Fenced != 0 || !slices.Equal(res.Capped, []string{"r1"}) {
		t.Errorf("first append: %+v, want 2 dropped, r1 capped", res)
	}
	res = appendLogs(t, s, store.LogAppendParams{Lines: append(lines("r1", 1, 4, "c"), lines("r2", 1, 1, "d")...), MaxLines: 3, MaxBytes: maxBytes})
	if res.Dropped != 4 || !slices.Equal(res.Capped, []string{"r1"}) {
		t.Errorf("second append: %+v, want 4 dropped, r1 capped", res)
	}
	got := logList(t, s, store.LogListParams{RunID: "r1"})
	if want := []string{"a0", "a1", "a2", store.LogCapMarker(3, maxBytes)}; !slices.Equal(texts(got), want) {
		t.Fatalf("r1 log %q, want %q", texts(got), want)
	}
	checkMarker(t, got[3], "r1", 3, maxBytes)
	if c := logStats(t, s, "r1"); c != (store.LogStats{Lines: 3, Bytes: 6, Dropped: 6}) {
		t.Errorf("r1 stats %+v, want 3 lines, 6 bytes, 6 dropped", c)
	}
	if got, want := texts(logList(t, s, store.LogListParams{RunID: "r2"})), []string{"b0", "b1", "d0"}; !slices.Equal(got, want) {
		t.Errorf("r2 log %q, want %q", got, want)
	}
	if c := logStats(t, s, "r2"); c != (store.LogStats{Lines: 3, Bytes: 6}) {
		t.Errorf("r2 stats %+v", c)
	}
}

// The byte cap counts text bytes; once a line does not fit, the run is
// capped: a smaller line after it is dropped too.
func testLogsCapBytes(t *testing.T, s store.Store) {
	insert(t, s, params("r1"))
	claimAll(t, s)
	mk := func(texts ...string) []store.LogLine {
		out := make([]store.LogLine, len(texts))
		for i, x := range texts {
			out[i] = store.LogLine{RunID: "r1", Attempt: 1, Time: t0, Stream: "stderr", Text: x}
		}
		return out
	}
	res := appendLogs(t, s, store.LogAppendParams{Lines: mk("aaaa", "bbbb", "cc"), MaxLines: 100, MaxBytes: 10})
	if res.Dropped != 0 || len(res.Capped) != 0 {
		t.Errorf("exactly at the cap: %+v", res)
	}
	res = appendLogs(t, s, store.LogAppendParams{Lines: mk(strings.Repeat("x", 20), "y"), MaxLines: 100, MaxBytes: 10})
	if res.Dropped != 2 || !slices.Equal(res.Capped, []string{"r1"}) {
		t.Errorf("past the cap: %+v", res)
	}
	got := logList(t, s, store.LogListParams{RunID: "r1"})
	if want := []string{"aaaa", "bbbb", "cc", store.LogCapMarker(100, 10)}; !slices.Equal(texts(got), want) {
		t.Fatalf("log %q, want %q", texts(got), want)
	}
	checkMarker(t, got[3], "r1", 100, 10)
	if c := logStats(t, s, "r1"); c != (store.LogStats{Lines: 3, Bytes: 10, Dropped: 2}) {
		t.Errorf("stats %+v", c)
	}
}

// The caps hold for all attempts of a run together.
func testLogsCapAcrossAttempts(t *testing.T, s store.Store) {
	insert(t, s, params("r1"))
	claimAll(t, s)
	p := store.LogAppendParams{Lines: lines("r1", 1, 3, "first"), MaxLines: 4, MaxBytes: 1 << 20}
	appendLogs(t, s, p)
	if !finishOne(t, s, store.RunFinishParams{ID: "r1", Attempt: 1, Status: store.StatusQueued, Now: t0}) {
		t.Fatal("hand-back rejected")
	}
	claimAll(t, s)
	p.Lines = lines("r1", 2, 3, "second")
	if res := appendLogs(t, s, p); res.Dropped != 2 {
		t.Errorf("second attempt: %+v, want 2 dropped", res)
	}
	got := logList(t, s, store.LogListParams{RunID: "r1"})
	if want := []string{"first0", "first1", "first2", "second0", store.LogCapMarker(4, 1<<20)}; !slices.Equal(texts(got), want) {
		t.Fatalf("log %q, want %q", texts(got), want)
	}
	if got[4].Attempt != 2 {
		t.Errorf("marker of attempt %d, want 2 (the attempt that hit the cap)", got[4].Attempt)
	}
}

// Lines a server dropped before they reached the store are added to the
// run's count; unknown runs are ignored.
func testLogsDroppedEarly(t *testing.T, s store.Store) {
	insert(t, s, params("r1"))
	claimAll(t, s)
	appendLogs(t, s, store.LogAppendParams{Lines: lines("r1", 1, 3, ""), MaxLines: 2})
	res := appendLogs(t, s, store.LogAppendParams{Dropped: map[string]int64{"r1": 40, "ghost": 7}, MaxLines: 2})
	if res.Dropped != 0 || !slices.Equal(res.Capped, []string{"r1"}) {
		t.Errorf("result %+v, want r1 capped, none dropped by this call", res)
	}
	if c := logStats(t, s, "r1"); c.Dropped != 41 || c.Lines != 2 {
		t.Errorf("stats %+v, want 2 lines, 41 dropped", c)
	}
	if c := logStats(t, s, "ghost"); c != (store.LogStats{}) {
		t.Errorf("unknown run's stats %+v", c)
	}
	if got := logList(t, s, store.LogListParams{RunID: "r1"}); len(got) != 3 {
		t.Errorf("%d lines, want 2 and the marker", len(got))
	}
}
