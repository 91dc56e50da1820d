package server

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/pluto-sched/pluto/internal/engine"
	plutov1 "github.com/pluto-sched/pluto/internal/gen/pluto/v1"
)

// Dispatches queued for a worker are merged, but never past the worker's
// message limit: a worker with gRPC's default 4 MiB limit once died on 16
// merged 900 KB payloads and its runs were re-dispatched forever.
func TestDispatchesStayUnderTheWorkersLimit(t *testing.T) {
	h := helloFromProto(&plutov1.Hello{WorkerId: "w", MaxMessageBytes: 0}, 64<<20)
	if h.MaxMessage > 4<<20 || h.MaxMessage < 4<<20-4096 {
		t.Fatalf("limit of a worker that names none: %d, want just under 4 MiB", h.MaxMessage)
	}
	c := newStreamConn(nil, h.MaxMessage)
	payload := append(append([]byte(`"`), bytes.Repeat([]byte("p"), 900_000)...), '"')
	total := 0
	for i := range 16 {
		c.Dispatch([]engine.Task{{RunID: "r" + string(rune('a'+i)), Attempt: 1, Type: "t", Group: "g", Payload: payload}})
	}
	c.Dispatch(make16(payload)) // and 16 in one call
	for _, m := range c.queue {
		d := m.GetDispatch()
		if d == nil {
			t.Fatalf("unexpected message %v", m)
		}
		total += len(d.Tasks)
		if n := proto.Size(m); n > 4<<20 {
			t.Fatalf("a dispatch of %d tasks is %d bytes, over the worker's 4 MiB", len(d.Tasks), n)
		}
	}
	if total != 32 {
		t.Fatalf("%d tasks queued, want 32", total)
	}
	if len(c.queue) < 8 {
		t.Fatalf("%d messages for 32 tasks of 900 KB: not merged up to the limit", len(c.queue))
	}
}

func make16(payload []byte) []engine.Task {
	ts := make([]engine.Task, 16)
	for i := range ts {
		ts[i] = engine.Task{RunID: "s" + string(rune('a'+i)), Attempt: 1, Type: "t", Group: "g", Payload: payload}
	}
	return ts
}

func TestHelloLimitIsTheSmallerOfWorkerAndServer(t *testing.T) {
	h := helloFromProto(&plutov1.Hello{WorkerId: "w", MaxMessageBytes: 64 << 20}, 16<<20)
	if h.MaxMessage > 16<<20 || h.MaxMessage < 16<<20-4096 {
		t.Fatalf("limit %d, want just under the server's 16 MiB", h.MaxMessage)
	}
}

func TestStoredTextIsValidUTF8WithoutNUL(t *testing.T) {
	for _, in := range [][]byte{[]byte("a\xffb"), []byte("nul\x00byte"), bytes.Repeat([]byte{0xff, 0}, 100_000)} {
		got := storedText(in, maxLogLineBytes)
		if !utf8.ValidString(got) || bytes.IndexByte([]byte(got), 0) >= 0 || len(got) > 3*maxLogLineBytes {
			t.Fatalf("storedText(%q…) = %q…", in[:min(len(in), 10)], got[:min(len(got), 10)])
		}
	}
}

// A 10 MB line from a client that does not split its lines is cut to
// maxLogLineBytes and says so.
func TestLongLogLineIsCutWithAMarker(t *testing.T) {
	got := logText(bytes.Repeat([]byte("x"), 10<<20))
	if !strings.HasPrefix(got, strings.Repeat("x", maxLogLineBytes)+" … [line cut: ") || len(got) > maxLogLineBytes+64 {
		t.Fatalf("cut line of %d bytes ends %q", len(got), got[max(0, len(got)-60):])
	}
	if short := logText([]byte("short")); short != "short" {
		t.Errorf("short line stored as %q", short)
	}
}

func TestResultAcksStayUnderTheWorkersLimit(t *testing.T) {
	c := newStreamConn(nil, 64<<10)
	for i := range 2000 {
		c.ResultAcks([]engine.ResultAck{{RunID: fmt.Sprintf("r_%026d", i), Attempt: 1, Accepted: true}})
	}
	n := 0
	for _, m := range c.queue {
		if size := proto.Size(m); size > 64<<10 {
			t.Fatalf("a message of %d acks is %d bytes, over the 64 KiB limit", len(m.GetResultAcks().GetAcks()), size)
		}
		n += len(m.GetResultAcks().GetAcks())
	}
	if n != 2000 || len(c.queue) > 10 {
		t.Fatalf("%d acks in %d messages", n, len(c.queue))
	}
}
