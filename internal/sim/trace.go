package sim

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// trace is a seed's compact event log, kept in memory and printed only
// when the seed fails.
type trace struct {
	mu    sync.Mutex
	start time.Time
	lines []string
}

func newTrace(start time.Time) *trace { return &trace{start: start} }

// add records one event at the current (fake) time.
func (t *trace) add(format string, args ...any) {
	line := fmt.Sprintf("%8.3fs ", time.Since(t.start).Seconds()) + fmt.Sprintf(format, args...)
	t.mu.Lock()
	t.lines = append(t.lines, line)
	t.mu.Unlock()
}

// snapshot returns a copy of the lines so far.
func (t *trace) snapshot() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.lines...)
}

// write writes the whole trace.
func (t *trace) write(w io.Writer) {
	for _, l := range t.snapshot() {
		fmt.Fprintln(w, l)
	}
}

// excerpt returns the lines that mention any of the words, and the last
// tail lines, at most max in all, in order, with "…" where lines were left
// out.
func (t *trace) excerpt(words []string, tail, max int) []string {
	lines := t.snapshot()
	keep := make([]bool, len(lines))
	n := 0
	for i := len(lines) - 1; i >= 0 && n < max; i-- {
		hit := i >= len(lines)-tail
		for _, w := range words {
			if w != "" && strings.Contains(lines[i], w) {
				hit = true
				break
			}
		}
		if hit {
			keep[i] = true
			n++
		}
	}
	var out []string
	gap := false
	for i, l := range lines {
		if !keep[i] {
			gap = true
			continue
		}
		if gap && len(out) > 0 {
			out = append(out, "   …")
		}
		gap = false
		out = append(out, l)
	}
	return out
}

// logHandler sends the engine's log records (Info and above) to the trace.
type logHandler struct {
	t     *trace
	attrs []slog.Attr
}

func (h *logHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h *logHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "engine %s: %s", strings.ToLower(r.Level.String()), r.Message)
	for _, a := range h.attrs {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	h.t.add("%s", b.String())
	return nil
}

func (h *logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &logHandler{t: h.t, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}

func (h *logHandler) WithGroup(string) slog.Handler { return h }
