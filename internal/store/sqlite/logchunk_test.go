package sqlite

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// Lines split into chunks of one run each, within the limits, come back
// from their blobs as they went in, with their seqs.
func TestChunksRoundTrip(t *testing.T) {
	t0 := time.UnixMicro(1_700_000_000_000_000).UTC()
	var lines []store.LogLine
	add := func(run string, n int, text string) {
		for i := range n {
			lines = append(lines, store.LogLine{RunID: run, Attempt: 2, Time: t0.Add(time.Duration(len(lines)-i*2) * time.Millisecond),
				Stream: "stderr", Level: "warn", Text: text})
		}
	}
	add("a", 3, "x")
	add("b", 1, "")
	add("a", chunkLines+5, "y")
	add("c", 3, strings.Repeat("z", chunkBytes/2))
	chunks, next := chunksOf(lines, 41)
	if next != 41+int64(len(lines)) {
		t.Fatalf("next seq %d", next)
	}
	var got []store.LogEntry
	for _, c := range chunks {
		if len(c.lines) > chunkLines || (len(c.lines) > 1 && len(c.lines[0].Text)*len(c.lines) > chunkBytes) {
			t.Errorf("chunk of %d lines of %d bytes", len(c.lines), len(c.lines[0].Text))
		}
		err := decodeChunk(c.runID, c.lastSeq(), encodeChunk(&c), func(e store.LogEntry) bool {
			got = append(got, e)
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// a 3, b 1, a 64 + 5, c 2 + 1 (two lines of half the byte limit fill a chunk).
	sizes := make([]int, len(chunks))
	for i, c := range chunks {
		sizes[i] = len(c.lines)
	}
	if want := []int{3, 1, chunkLines, 5, 2, 1}; !slices.Equal(sizes, want) {
		t.Errorf("chunks of %v lines, want %v", sizes, want)
	}
	if len(got) != len(lines) {
		t.Fatalf("%d lines back, want %d", len(got), len(lines))
	}
	for i, e := range got {
		if e.Seq != 41+int64(i) || e.LogLine != lines[i] {
			t.Fatalf("line %d: %+v, want seq %d %+v", i, e, 41+i, lines[i])
		}
	}
	// Stopping early.
	n := 0
	c := chunks[2]
	if err := decodeChunk(c.runID, c.lastSeq(), encodeChunk(&c), func(store.LogEntry) bool { n++; return n < 3 }); err != nil || n != 3 {
		t.Errorf("stopped after %d lines, %v", n, err)
	}
}

// Moved lines keep seqs that are not consecutive.
func TestChunkSparseSeqs(t *testing.T) {
	c := chunk{runID: "r", lines: make([]store.LogLine, 3), seqs: []int64{7, 12, 900}}
	var seqs []int64
	err := decodeChunk("r", 900, encodeChunk(&c), func(e store.LogEntry) bool { seqs = append(seqs, e.Seq); return true })
	if err != nil || len(seqs) != 3 || seqs[0] != 7 || seqs[1] != 12 || seqs[2] != 900 {
		t.Errorf("seqs %v, %v", seqs, err)
	}
}

// A damaged blob is an error: cut anywhere, or with a byte changed.
func TestChunkDamaged(t *testing.T) {
	c := chunk{runID: "r", lines: []store.LogLine{{Attempt: 1, Stream: "stdout", Text: "hello"}, {Attempt: 1, Stream: "stdout", Text: "world"}}, seqs: []int64{5, 6}}
	b := encodeChunk(&c)
	for i := range len(b) {
		if err := decodeChunk("r", 6, b[:i], func(store.LogEntry) bool { return true }); !errors.Is(err, errBadChunk) {
			t.Errorf("cut at %d: %v", i, err)
		}
	}
	if err := decodeChunk("r", 6, append(b, 0), func(store.LogEntry) bool { return true }); !errors.Is(err, errBadChunk) {
		t.Errorf("a byte too many: %v", err)
	}
	if err := decodeChunk("r", 0, b, func(store.LogEntry) bool { return true }); !errors.Is(err, errBadChunk) {
		t.Errorf("seqs below zero: %v", err)
	}
}

func FuzzDecodeChunk(f *testing.F) {
	c := chunk{runID: "r", lines: []store.LogLine{{Attempt: 1, Stream: "stdout", Text: "a"}, {Attempt: 3, Stream: "log", Level: "warn", Text: "b"}}, seqs: []int64{1, 2}}
	f.Add(int64(2), encodeChunk(&c))
	f.Add(int64(0), []byte{1})
	f.Fuzz(func(t *testing.T, last int64, b []byte) {
		var prev int64 = -1 << 62
		err := decodeChunk("r", last, b, func(e store.LogEntry) bool {
			if e.Seq <= prev || e.Seq > last || e.Seq < 0 {
				t.Fatalf("seq %d after %d (last %d)", e.Seq, prev, last)
			}
			prev = e.Seq
			return true
		})
		if err == nil && prev != last {
			t.Fatalf("decoded without error, but the last seq is %d, not %d", prev, last)
		}
	})
}
