package client_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pluto-sched/pluto/client"
)

// freeAddr returns a loopback address nothing listens on (yet).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// startFakeOn starts a fake on addr for the rest of the test.
func startFakeOn(t *testing.T, name, addr string) *fakeServer {
	t.Helper()
	f, err := startFakeAt(name, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.stop)
	return f
}

// spoolClient dials addr with a spool in dir and a short back-off.
func spoolClient(t *testing.T, addr, dir string, opts ...client.Option) *client.Client {
	t.Helper()
	opts = append([]client.Option{client.WithSpool(dir), client.WithSpoolBackoff(5*time.Millisecond, 50*time.Millisecond)}, opts...)
	c, err := client.Dial(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// mustSpool submits specs and requires them to be spooled; it returns
// their keys.
func mustSpool(t *testing.T, c *client.Client, specs ...client.RunSpec) []string {
	t.Helper()
	return mustSpoolCtx(t, ctxT(t), c, specs...)
}

func mustSpoolCtx(t *testing.T, ctx context.Context, c *client.Client, specs ...client.RunSpec) []string {
	t.Helper()
	runs, err := c.SubmitBatch(ctx, specs)
	var se *client.SpooledError
	if runs != nil || !errors.As(err, &se) || !errors.Is(err, client.ErrSpooled) {
		t.Fatalf("SubmitBatch = %v, %v; want a SpooledError", runs, err)
	}
	if errors.Is(err, client.ErrUnavailable) {
		t.Errorf("a spooled submission matches ErrUnavailable: callers would resubmit it")
	}
	if len(se.Keys) != len(specs) {
		t.Fatalf("%d keys for %d specs", len(se.Keys), len(specs))
	}
	return se.Keys
}

func TestSpoolServerDown(t *testing.T) {
	addr, dir := freeAddr(t), t.TempDir()
	c := spoolClient(t, addr, dir)
	ctx := ctxT(t)

	// A rejection is the caller's to handle, never spooled.
	_, err := c.Submit(ctx, client.RunSpec{Group: "g"})
	var fe *client.FieldError
	if !errors.As(err, &fe) || fe.Field != "type" || errors.Is(err, client.ErrSpooled) {
		t.Errorf("no type: err = %v, want a FieldError", err)
	}
	_, err = c.Submit(ctx, client.RunSpec{Type: "t", Group: "g", Payload: json.RawMessage("{")})
	if !errors.Is(err, client.ErrInvalid) || errors.Is(err, client.ErrSpooled) {
		t.Errorf("bad payload: err = %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.Submit(cctx, client.RunSpec{Type: "t", Group: "g"}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled submit: err = %v, want context.Canceled", err)
	}

	before := time.Now()
	_, err = c.Submit(ctx, client.RunSpec{Type: "t", Group: "g", Payload: 1, Key: "k-1"})
	var se *client.SpooledError
	if !errors.As(err, &se) || !errors.Is(se.Cause, client.ErrUnavailable) || se.Keys[0] != "k-1" {
		t.Fatalf("err = %#v, want a SpooledError for k-1 caused by ErrUnavailable", err)
	}
	keys := []string{"k-1"}
	keys = append(keys, mustSpool(t, c, client.RunSpec{Type: "t", Group: "g", Payload: 2})...)
	keys = append(keys, mustSpool(t, c, client.RunSpec{Type: "t", Group: "g", Delay: time.Hour})...)
	after := time.Now()
	keys = append(keys, mustSpool(t, c,
		client.RunSpec{Type: "t", Group: "g", Payload: 4},
		client.RunSpec{Type: "t", Group: "g", Payload: 5, Key: "k-5"})...)
	for i, k := range keys {
		if k != "k-1" && k != "k-5" && !strings.HasPrefix(k, "auto-") {
			t.Errorf("key %d = %q, want a generated key", i, k)
		}
	}
	if len(slices.Compact(slices.Sorted(slices.Values(keys)))) != len(keys) {
		t.Errorf("keys not distinct: %v", keys)
	}
	if n := c.SpoolLen(); n != 5 {
		t.Fatalf("SpoolLen = %d, want 5", n)
	}

	// While no server answers, a flush gives up with the context.
	fctx, fcancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer fcancel()
	if err := c.FlushSpool(fctx); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "5 specs left") {
		t.Errorf("FlushSpool with the server down = %v", err)
	}

	f := startFakeOn(t, "s", addr)
	if err := c.FlushSpool(ctx); err != nil {
		t.Fatal(err)
	}
	if n := c.SpoolLen(); n != 0 {
		t.Errorf("SpoolLen after flush = %d", n)
	}
	// Each spec once, in the order spooled.
	if diff := cmp.Diff(keys, f.createdKeys()); diff != "" {
		t.Errorf("runs created (-spooled +created):\n%s", diff)
	}
	// The delay counts from the Submit, not from the delivery.
	delayed := f.runWithKey(keys[2])
	if at := time.UnixMilli(delayed.RunAtUnixMs); delayed.Status != "pending" ||
		at.Before(before.Add(time.Hour).Truncate(time.Millisecond)) || at.After(after.Add(time.Hour)) {
		t.Errorf("delayed run: status %s run_at %v, want pending at submit+1h", delayed.Status, at)
	}
	// Compacted once empty: only the header is left.
	if fi, err := os.Stat(filepath.Join(dir, "spool.log")); err != nil || fi.Size() != 8 {
		t.Errorf("spool.log after delivery: %v, %v", fi.Size(), err)
	}

	// With a server up, a submission goes straight through, with a key.
	run, err := c.Submit(ctx, client.RunSpec{Type: "t", Group: "g"})
	if err != nil || run.ID == "" || !strings.HasPrefix(run.Key, "auto-") {
		t.Fatalf("Submit with the server up = %+v, %v", run, err)
	}
	if err := c.FlushSpool(ctx); err != nil || c.SpoolLen() != 0 {
		t.Errorf("empty flush = %v (len %d)", err, c.SpoolLen())
	}
}

func TestSpoolRestart(t *testing.T) {
	addr, dir := freeAddr(t), t.TempDir()
	c1, err := client.Dial(addr, client.WithSpool(dir))
	if err != nil {
		t.Fatal(err)
	}
	keys := mustSpool(t, c1, client.RunSpec{Type: "t", Group: "g", Payload: "a"}, client.RunSpec{Type: "t", Group: "g", Payload: "b"})
	keys = append(keys, mustSpool(t, c1, client.RunSpec{Type: "t", Group: "g", Payload: "c"})...)

	// One client per spool directory.
	if c, err := client.Dial(addr, client.WithSpool(dir)); err == nil {
		c.Close()
		t.Fatal("a second client opened a spool in use")
	} else if !strings.Contains(err.Error(), "in use") {
		t.Errorf("error %q does not say the spool is in use", err)
	}
	if err := c1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c1.FlushSpool(ctxT(t)); err == nil {
		t.Error("FlushSpool on a closed client succeeded")
	}

	// A new process on the same spool delivers what the old one left.
	f := startFakeOn(t, "s", addr)
	c2 := spoolClient(t, addr, dir)
	if err := c2.FlushSpool(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(keys, f.createdKeys()); diff != "" {
		t.Errorf("runs created (-spooled +created):\n%s", diff)
	}
	if err := c2.Close(); err != nil {
		t.Fatal(err)
	}
	c3 := spoolClient(t, addr, dir)
	if n := c3.SpoolLen(); n != 0 {
		t.Errorf("after a restart the spool holds %d specs, want 0", n)
	}
}

func TestSpoolAmbiguousFailure(t *testing.T) {
	// The server stores the submission, but the reply never arrives: the
	// spec is spooled, resent, and the key keeps it to one run.
	for _, lose := range []string{"unavailable", "hang"} {
		t.Run(lose, func(t *testing.T) {
			f := startFakeOn(t, "s", "127.0.0.1:0")
			c := spoolClient(t, f.addr, t.TempDir(), client.WithTimeout(200*time.Millisecond))
			f.setLose(lose)
			// No deadline of the caller's: WithTimeout bounds the wait.
			keys := mustSpoolCtx(t, context.Background(), c, client.RunSpec{Type: "t", Group: "g"}, client.RunSpec{Type: "t", Group: "g", Key: "mine"})
			if got := f.createdKeys(); !cmp.Equal(keys, got) {
				t.Fatalf("stored %v, want %v", got, keys)
			}
			f.setLose("")
			if err := c.FlushSpool(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			if got := f.createdKeys(); !cmp.Equal(keys, got) {
				t.Errorf("after the resend: runs %v, want %v (once each)", got, keys)
			}
			if n := f.submitCount(); n < 2 {
				t.Errorf("%d submit requests, want the first and a resend", n)
			}
		})
	}
}

func TestSpoolDeadLetter(t *testing.T) {
	addr, dir := freeAddr(t), t.TempDir()
	type report struct {
		key     string
		invalid bool
		large   bool
		payload string
	}
	var mu sync.Mutex
	var reports []report
	c := spoolClient(t, addr, dir, client.WithSpoolErrorHandler(func(spec client.RunSpec, err error) {
		mu.Lock()
		defer mu.Unlock()
		raw, _ := spec.Payload.(json.RawMessage)
		reports = append(reports, report{spec.Key, errors.Is(err, client.ErrInvalid), errors.Is(err, client.ErrPayloadTooLarge), string(raw)})
	}))
	mustSpool(t, c, client.RunSpec{Type: "t", Group: "g", Key: "good-1"})
	mustSpool(t, c, client.RunSpec{Type: "t", Group: "g", Key: "bad-priority", Priority: 1 << 21, Payload: map[string]int{"n": 1}})
	mustSpool(t, c,
		client.RunSpec{Type: "t", Group: "g", Key: "good-2"},
		client.RunSpec{Type: "t", Group: "g", Key: "too-large", Payload: strings.Repeat("x", 2000)})

	f := startFakeOn(t, "s", addr)
	if err := c.FlushSpool(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"good-1", "good-2"}, f.createdKeys()); diff != "" {
		t.Errorf("runs created (-want +got):\n%s", diff)
	}
	mu.Lock()
	want := []report{{"bad-priority", true, false, `{"n":1}`}, {"too-large", false, true, `"` + strings.Repeat("x", 2000) + `"`}}
	if diff := cmp.Diff(want, reports, cmp.AllowUnexported(report{})); diff != "" {
		t.Errorf("reported (-want +got):\n%s", diff)
	}
	mu.Unlock()
	if c.SpoolLen() != 0 {
		t.Errorf("SpoolLen = %d", c.SpoolLen())
	}

	fh, err := os.Open(filepath.Join(dir, "dead.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var dead []string
	sc := bufio.NewScanner(fh)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var d struct {
			Time  time.Time      `json:"time"`
			Error string         `json:"error"`
			Run   map[string]any `json:"run"`
		}
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			t.Fatalf("dead letter %s: %v", sc.Bytes(), err)
		}
		if d.Time.IsZero() || d.Error == "" || d.Run["type"] != "t" || d.Run["group"] != "g" {
			t.Errorf("dead letter %s", sc.Bytes())
		}
		dead = append(dead, d.Run["key"].(string))
	}
	if diff := cmp.Diff([]string{"bad-priority", "too-large"}, dead); diff != "" {
		t.Errorf("dead letters (-want +got):\n%s", diff)
	}
}

func TestSpoolTornTail(t *testing.T) {
	addr, dir := freeAddr(t), t.TempDir()
	log := filepath.Join(dir, "spool.log")
	c1, err := client.Dial(addr, client.WithSpool(dir))
	if err != nil {
		t.Fatal(err)
	}
	a := mustSpool(t, c1, client.RunSpec{Type: "t", Group: "g", Key: "a"})
	mustSpool(t, c1, client.RunSpec{Type: "t", Group: "g", Key: "torn"})
	c1.Close()

	// A crash cut the last record short.
	fi, err := os.Stat(log)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(log, fi.Size()-3); err != nil {
		t.Fatal(err)
	}
	c2, err := client.Dial(addr, client.WithSpool(dir))
	if err != nil {
		t.Fatal(err)
	}
	if n := c2.SpoolLen(); n != 1 {
		t.Fatalf("SpoolLen after a torn tail = %d, want 1", n)
	}
	b := mustSpool(t, c2, client.RunSpec{Type: "t", Group: "g", Key: "b"})
	c2.Close()

	// Garbage after the last record (a length, then junk).
	fh, err := os.OpenFile(log, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.WriteString("\x20\x00\x00\x00\xde\xad\xbe\xefjunk"); err != nil {
		t.Fatal(err)
	}
	fh.Close()

	c3 := spoolClient(t, addr, dir)
	if n := c3.SpoolLen(); n != 2 {
		t.Errorf("SpoolLen = %d, want 2", n)
	}
	f := startFakeOn(t, "s", addr)
	if err := c3.FlushSpool(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(append(a, b...), f.createdKeys()); diff != "" {
		t.Errorf("runs created (-want +got):\n%s", diff)
	}
}

func TestSpoolBadDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "spool.log"), []byte("something else entirely"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial("127.0.0.1:1", client.WithSpool(dir))
	if err == nil {
		c.Close()
		t.Fatal("opened a spool whose log is not one")
	}
	if !strings.Contains(err.Error(), "not a spool log") {
		t.Errorf("err = %v", err)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err := client.Dial("127.0.0.1:1", client.WithSpool(file)); err == nil {
		c.Close()
		t.Error("a spool in a regular file")
	}
}

func TestNoSpool(t *testing.T) {
	_, c := setup(t)
	if err := c.FlushSpool(ctxT(t)); err != nil || c.SpoolLen() != 0 {
		t.Errorf("FlushSpool, SpoolLen without a spool = %v, %d", err, c.SpoolLen())
	}
	run, err := c.Submit(ctxT(t), client.RunSpec{Type: "t", Group: "g"})
	if err != nil || run.Key != "" {
		t.Errorf("a client without a spool generated key %q (%v)", run.Key, err)
	}
}
