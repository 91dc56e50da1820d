package client

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func seedRecords() [][]byte {
	spec := appendRecord(nil, record{kind: recSpec, seq: 1, data: []byte("\x0a\x01t\x12\x01g")})
	done := appendRecord(nil, record{kind: recDone, seq: 1})
	return [][]byte{
		spec, done, spec[:len(spec)-1], append(slices.Clone(spec), done...),
		appendRecord(nil, record{kind: recSpec, seq: 0}),
		appendRecord(nil, record{kind: 7, seq: 3, data: []byte("x")}),
		appendRecord(nil, record{kind: recDone, seq: 2, data: []byte("x")}),
		{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}, {}, []byte("PLSPOOL1"),
	}
}

func FuzzDecodeRecord(f *testing.F) {
	for _, b := range seedRecords() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, n, err := decodeRecord(b)
		if err != nil {
			if n != 0 {
				t.Fatalf("error with length %d", n)
			}
			return
		}
		if n < recFrameLen+recBodyMin || n > len(b) {
			t.Fatalf("length %d of %d bytes", n, len(b))
		}
		if r.kind != recSpec && r.kind != recDone {
			t.Fatalf("kind %d", r.kind)
		}
		if again := appendRecord(nil, r); !bytes.Equal(again, b[:n]) {
			t.Fatalf("re-encoded %x, decoded from %x", again, b[:n])
		}
	})
}

func FuzzParseLog(f *testing.F) {
	for _, b := range seedRecords() {
		f.Add(b)
	}
	var log []byte
	for i := uint64(1); i <= 4; i++ {
		log = appendRecord(log, record{kind: recSpec, seq: i, data: []byte{byte(i)}})
		if i == 2 {
			log = appendRecord(log, record{kind: recDone, seq: 1})
		}
	}
	f.Add(log)
	f.Add(log[:len(log)-2])
	f.Fuzz(func(t *testing.T, b []byte) {
		live, maxSeq, good := parseLog(b)
		if good < 0 || good > len(b) {
			t.Fatalf("good = %d of %d", good, len(b))
		}
		for i, e := range live {
			if e.seq == 0 || e.seq > maxSeq || i > 0 && e.seq <= live[i-1].seq {
				t.Fatalf("live seqs %v (max %d)", live, maxSeq)
			}
		}
		// The intact prefix reads the same, and a torn tail changes nothing.
		live2, maxSeq2, good2 := parseLog(b[:good])
		if good2 != good || maxSeq2 != maxSeq || !slices.EqualFunc(live, live2, func(a, b spoolEntry) bool {
			return a.seq == b.seq && bytes.Equal(a.data, b.data)
		}) {
			t.Fatalf("prefix parses differently")
		}
	})
}

func TestSpoolCompaction(t *testing.T) {
	old := compactMin
	t.Cleanup(func() { compactMin = old })
	dir := t.TempDir()
	path := filepath.Join(dir, spoolLog)
	size := func() int64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	data := make([][]byte, 10)
	for i := range data {
		data[i] = []byte(strings.Repeat(string(rune('a'+i)), 50))
	}
	recLen := recordLen(50)
	doneLen := recordLen(0)
	header := int64(len(spoolHeader))

	s, err := openSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.append(data); err != nil {
		t.Fatal(err)
	}
	if got, want := size(), header+10*recLen; got != want {
		t.Fatalf("size %d, want %d", got, want)
	}

	// Below the threshold: a done record is appended.
	compactMin = 1 << 30
	h := s.head(2, 1<<20)
	if err := s.remove(2, h[1]); err != nil {
		t.Fatal(err)
	}
	if got, want := size(), header+10*recLen+doneLen; got != want {
		t.Fatalf("after a removal: size %d, want %d", got, want)
	}

	// Over it and over half the log: rewritten with what is left.
	compactMin = 100
	h = s.head(5, 1<<20)
	if len(h) != 5 || h[0].seq != 3 {
		t.Fatalf("head = %v", h)
	}
	if err := s.remove(5, h[4]); err != nil {
		t.Fatal(err)
	}
	if got, want := size(), header+3*recLen; got != want {
		t.Fatalf("after compaction: size %d, want %d", got, want)
	}
	if err := s.remove(1, h[0]); err == nil {
		t.Error("removed a spec that had left")
	}
	if err := s.close(); err != nil {
		t.Fatal(err)
	}

	s, err = openSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	h = s.head(100, 1<<20)
	var seqs []uint64
	for _, e := range h {
		seqs = append(seqs, e.seq)
	}
	if !slices.Equal(seqs, []uint64{8, 9, 10}) || !bytes.Equal(h[0].data, data[7]) {
		t.Fatalf("reopened: seqs %v", seqs)
	}
	// New specs continue the sequence.
	if err := s.append(data[:1]); err != nil {
		t.Fatal(err)
	}
	if got := s.tailSeq(); got != 11 {
		t.Errorf("tail seq %d, want 11", got)
	}
	// Emptied: rewritten to the header alone.
	h = s.head(100, 1<<20)
	if err := s.remove(len(h), h[len(h)-1]); err != nil {
		t.Fatal(err)
	}
	if got := size(); got != header {
		t.Errorf("empty spool: size %d", got)
	}
	if _, err := os.Stat(filepath.Join(dir, spoolTmp)); !os.IsNotExist(err) {
		t.Errorf("%s left behind: %v", spoolTmp, err)
	}
}

func TestSpoolHeadLimits(t *testing.T) {
	s, err := openSpool(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	big := bytes.Repeat([]byte("x"), 600)
	if err := s.append([][]byte{big, big, []byte("a"), []byte("b")}); err != nil {
		t.Fatal(err)
	}
	if h := s.head(10, 1000); len(h) != 1 {
		t.Errorf("head by bytes: %d specs, want 1", len(h))
	}
	if h := s.head(10, 100); len(h) != 1 {
		t.Errorf("head with one spec over the limit: %d specs, want 1", len(h))
	}
	if h := s.head(3, 1<<20); len(h) != 3 {
		t.Errorf("head by count: %d specs, want 3", len(h))
	}
}

func TestRetryWait(t *testing.T) {
	for n := range 70 {
		d := retryWait(DefaultSpoolBackoff, DefaultSpoolMaxBackoff, n)
		ceil := min(DefaultSpoolMaxBackoff, DefaultSpoolBackoff<<min(n, 20))
		if d < ceil/2 || d > ceil {
			t.Fatalf("retryWait(%d) = %v, want within [%v, %v]", n, d, ceil/2, ceil)
		}
	}
}
