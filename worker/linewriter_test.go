package worker

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// outputLines writes each of writes to r.Output(StreamStdout), flushes, and
// returns the texts of the lines the run logged. A panic in the writer
// fails the test instead of crashing the test binary.
func outputLines(t *testing.T, writes ...[]byte) []string {
	t.Helper()
	var log bytes.Buffer
	r := NewTestRun(TestRun{Log: &log})
	out := r.Output(StreamStdout)
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("Output writer panicked: %v", p)
			}
		}()
		for _, w := range writes {
			out.Write(w)
		}
		r.FlushOutput()
	}()
	var lines []string
	for _, l := range strings.SplitAfter(log.String(), "\n") {
		if l == "" {
			continue
		}
		text, ok := strings.CutPrefix(strings.TrimSuffix(l, "\n"), "stdout: ")
		if !ok {
			t.Fatalf("unexpected log line %q", l)
		}
		lines = append(lines, text)
	}
	return lines
}

// chunks cuts b into writes of n bytes, as a pipe delivers a command's
// output.
func chunks(b []byte, n int) [][]byte {
	var out [][]byte
	for len(b) > n {
		out = append(out, b[:n])
		b = b[n:]
	}
	return append(out, b)
}

// Output without newlines, or with lines at the size limit, is cut into
// lines of at most maxLineBytes. A line of exactly maxLineBytes used to
// panic (index out of range) and take `pluto worker` down with it.
func TestOutputLongLines(t *testing.T) {
	a := func(n int) string { return strings.Repeat("a", n) }
	b := func(s string) []byte { return []byte(s) }
	const k = maxLineBytes
	tests := []struct {
		name   string
		writes [][]byte
		want   []string
	}{
		{"exactly the limit, no newline", [][]byte{b(a(k))}, []string{a(k)}},
		{"exactly the limit, written as a pipe does", chunks(b(a(k)), 32<<10), []string{a(k)}},
		{"the limit and CRLF", chunks(b(a(k)+"\r\n"), 4096), []string{a(k)}},
		{"the limit and a CR, no newline", [][]byte{b(a(k) + "\r")}, []string{a(k), "\r"}},
		{"200 KiB without a newline", chunks(b(a(200<<10)), 32<<10), []string{a(k), a(k), a(k), a(200<<10 - 3*k)}},
		{"a rune across the limit", [][]byte{b(a(k-1) + "é\n")}, []string{a(k - 1), "é"}},
		{"no rune start near the limit", [][]byte{bytes.Repeat([]byte{0x80}, k+1)}, []string{strings.Repeat("\x80", k), "\x80"}},
		{"a long line, then short ones", [][]byte{b(a(k + 1)), b("\nx\n\ny")}, []string{a(k), "a", "x", "", "y"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := outputLines(t, tt.writes...)
			if len(got) != len(tt.want) {
				t.Fatalf("%d lines of lengths %v, want %d of lengths %v", len(got), lens(got), len(tt.want), lens(tt.want))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("lines differ (-want +got):\n%s", diff)
			}
		})
	}
}

func lens(ss []string) []int {
	n := make([]int, len(ss))
	for i, s := range ss {
		n[i] = len(s)
	}
	return n
}

type piece struct {
	text string
	eol  bool
}

// FuzzLineWriter feeds arbitrary bytes, in arbitrary writes, to a line
// writer: it must not panic, must emit no piece longer than its size, and
// the pieces (each followed by a newline when it ended a line) must give
// back the input, less one CR before each LF. mode's low bits choose a
// small piece size (fast to explore); with its high bit set the real
// maxLineBytes is used and data is repeated to a length near one, two or
// three times it (seed chooses which).
func FuzzLineWriter(f *testing.F) {
	f.Add(uint8(3), uint16(1), []byte("a\nbc\r\ndefghij\r\r\n\n\rk"))
	f.Add(uint8(5), uint16(7), []byte("héllo wörld \xff\xfe\x00 ✓✓✓\n"))
	f.Add(uint8(0), uint16(0), []byte{0x80, 0x80, 0x80, '\r', '\n', 0xe2, 0x9c})
	f.Add(uint8(0x80), uint16(0x0080), []byte("a"))   // exactly maxLineBytes, no newline
	f.Add(uint8(0x80), uint16(0x007e), []byte("a"))   // maxLineBytes-2
	f.Add(uint8(0x81), uint16(0x0182), []byte("é"))   // about 2×, runes of 2 bytes
	f.Add(uint8(0x83), uint16(0x0280), []byte("x\r")) // about 3×, CRs without LF
	f.Add(uint8(0x84), uint16(0x0081), []byte("✓\r\n"))
	f.Fuzz(func(t *testing.T, mode uint8, seed uint16, data []byte) {
		size := int(mode%8) + 1
		input := data
		if mode&0x80 != 0 {
			size = maxLineBytes
			if len(data) == 0 {
				data = []byte("a")
			}
			n := (int(seed>>8)%3+1)*maxLineBytes + int(seed&0xff) - 128
			input = bytes.Repeat(data, n/len(data)+1)[:n]
		}
		rng := rand.New(rand.NewPCG(uint64(seed), uint64(mode)))
		var got []piece
		w := &lineWriter{size: size, out: func(line []byte, eol bool) {
			got = append(got, piece{string(line), eol})
		}}
		for p := input; len(p) > 0; {
			n := min(len(p), rng.IntN(2*size+4))
			w.Write(p[:n])
			p = p[n:]
		}
		w.flush()

		checkRunes := size >= utf8.UTFMax && utf8.Valid(input)
		var joined []byte
		for i, pc := range got {
			if len(pc.text) > size {
				t.Fatalf("piece %d is %d bytes, more than %d", i, len(pc.text), size)
			}
			if !pc.eol && pc.text == "" {
				t.Fatalf("piece %d is empty and ends no line", i)
			}
			if !pc.eol && i < len(got)-1 && len(pc.text) < size-(utf8.UTFMax-1) {
				t.Fatalf("piece %d of a longer line is %d bytes: cut too early (size %d)", i, len(pc.text), size)
			}
			if checkRunes && !utf8.ValidString(pc.text) {
				t.Fatalf("piece %d splits a UTF-8 sequence: %q", i, pc.text)
			}
			joined = append(joined, pc.text...)
			if pc.eol {
				joined = append(joined, '\n')
			}
		}
		if want := bytes.ReplaceAll(input, []byte("\r\n"), []byte("\n")); !bytes.Equal(joined, want) {
			t.Fatalf("pieces do not give back the input (size %d):\n got %q\nwant %q", size, trunc(joined), trunc(want))
		}
	})
}

func trunc(b []byte) []byte {
	if len(b) > 200 {
		return append(b[:100:100], append([]byte("…"), b[len(b)-100:]...)...)
	}
	return b
}
