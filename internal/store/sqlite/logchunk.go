package sqlite

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// Log chunks
//
// As a row of its own a line cost SQLite about 5 µs of CPU (two B-tree
// inserts: the table and its index by run); a run printing a burst of
// 10,000 lines cost the server 50 ms. So consecutive lines of one run are
// stored together, up to chunkLines lines or chunkBytes of text, as one
// row of log_chunks: the run, the seq of its last line (the row's key) and
// the lines encoded in a blob. Each line keeps its own seq (a run's lines
// go in seq order; the lines of one LogAppend get consecutive seqs), so
// paging and Last-Event-ID work line by line as before. A line costs about
// a tenth of what it did.
//
// The blob: a version byte (1) and the number of lines, then for each
// line its distance in seq from the chunk's last line, its attempt, its
// time in Unix microseconds as a difference from the previous line's (the
// first's from zero), and its stream, level and text, each a length and
// the bytes. Integers are varints. decodeChunk checks everything it reads:
// a damaged blob is an error, never a panic.

const (
	chunkLines   = 64
	chunkBytes   = 32 << 10
	chunkVersion = 1
	// maxChunkLines bounds what decodeChunk accepts (old databases'
	// lines were moved as chunks of chunkLines too).
	maxChunkLines = 1 << 16
)

var errBadChunk = errors.New("sqlite: damaged log chunk")

// chunk is lines of one run on their way to a row, with their seqs.
type chunk struct {
	runID string
	lines []store.LogLine
	// seqs are the lines' seqs, or nil when they are first, first+1, …
	// (new lines; only lines moved from an old database have gaps).
	seqs  []int64
	first int64
}

// chunksOf splits lines (in order, runs interleaved or not) into chunks of
// consecutive lines of one run, numbering them from next; it returns the
// chunks and the next seq. The chunks share lines' array: nothing is
// copied until the blobs are encoded.
func chunksOf(lines []store.LogLine, next int64) ([]chunk, int64) {
	out := make([]chunk, 0, len(lines)/chunkLines+1)
	for i := 0; i < len(lines); {
		j, size := i, 0
		for j < len(lines) && lines[j].RunID == lines[i].RunID && j-i < chunkLines &&
			(j == i || size+len(lines[j].Text) <= chunkBytes) {
			size += len(lines[j].Text)
			j++
		}
		out = append(out, chunk{runID: lines[i].RunID, lines: lines[i:j:j], first: next})
		next += int64(j - i)
		i = j
	}
	return out, next
}

// seq is the seq of c's line i.
func (c *chunk) seq(i int) int64 {
	if c.seqs != nil {
		return c.seqs[i]
	}
	return c.first + int64(i)
}

// lastSeq is the seq of c's last line: its row's key.
func (c *chunk) lastSeq() int64 { return c.seq(len(c.lines) - 1) }

// encodeChunk returns c's blob.
func encodeChunk(c *chunk) []byte {
	n := 2 * binary.MaxVarintLen64
	for i := range c.lines {
		l := &c.lines[i]
		n += 6*binary.MaxVarintLen64 + len(l.Stream) + len(l.Level) + len(l.Text)
	}
	b := make([]byte, 0, n)
	b = append(b, chunkVersion)
	b = binary.AppendUvarint(b, uint64(len(c.lines)))
	last, prev := c.lastSeq(), int64(0)
	for i := range c.lines {
		l := &c.lines[i]
		t := l.Time.UnixMicro()
		b = binary.AppendUvarint(b, uint64(last-c.seq(i)))
		b = binary.AppendUvarint(b, uint64(max(l.Attempt, 0)))
		b = binary.AppendVarint(b, t-prev)
		prev = t
		for _, s := range []string{l.Stream, l.Level, l.Text} {
			b = binary.AppendUvarint(b, uint64(len(s)))
			b = append(b, s...)
		}
	}
	return b
}

// decodeChunk calls fn with each line of the blob b of run runID, whose
// last line has seq last, in order; it stops early if fn returns false.
func decodeChunk(runID string, last int64, b []byte, fn func(e store.LogEntry) bool) error {
	if len(b) == 0 || b[0] != chunkVersion || last < 0 {
		return fmt.Errorf("%w: version %v, last seq %d", errBadChunk, b[:min(len(b), 1)], last)
	}
	r := chunkReader{b: b[1:]}
	n := r.uvarint()
	if r.err != nil || n == 0 || n > maxChunkLines {
		return fmt.Errorf("%w: %d lines", errBadChunk, n)
	}
	prevDist, t := uint64(0), int64(0)
	for i := uint64(0); i < n; i++ {
		dist, attempt, dt := r.uvarint(), r.uvarint(), r.varint()
		stream, level, text := r.str(), r.str(), r.str()
		if r.err != nil {
			return r.err
		}
		// Seqs grow along the chunk and end at last; attempts fit an int.
		if (i > 0 && dist >= prevDist) || (i == n-1 && dist != 0) || dist > uint64(last) || attempt > 1<<31 {
			return fmt.Errorf("%w: line %d", errBadChunk, i)
		}
		prevDist, t = dist, t+dt
		e := store.LogEntry{Seq: last - int64(dist), LogLine: store.LogLine{
			RunID: runID, Attempt: int(attempt), Time: time.UnixMicro(t).UTC(), Stream: stream, Level: level, Text: text,
		}}
		if !fn(e) {
			return nil
		}
	}
	if len(r.b) != 0 {
		return fmt.Errorf("%w: %d bytes past its lines", errBadChunk, len(r.b))
	}
	return nil
}

// chunkReader reads a blob, keeping the first error.
type chunkReader struct {
	b   []byte
	err error
}

func (r *chunkReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, k := binary.Uvarint(r.b)
	if k <= 0 {
		r.err = fmt.Errorf("%w: bad varint", errBadChunk)
		return 0
	}
	r.b = r.b[k:]
	return v
}

func (r *chunkReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, k := binary.Varint(r.b)
	if k <= 0 {
		r.err = fmt.Errorf("%w: bad varint", errBadChunk)
		return 0
	}
	r.b = r.b[k:]
	return v
}

func (r *chunkReader) str() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.b)) {
		r.err = fmt.Errorf("%w: a string of %d bytes in %d", errBadChunk, n, len(r.b))
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}
