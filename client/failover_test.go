package client_test

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/client"
)

func TestFailover(t *testing.T) {
	tests := []struct {
		name string
		stop func(*fakeServer)
		key  string
	}{
		// A server that stops gracefully sends GOAWAY: any call moves on.
		{"graceful stop, no key", (*fakeServer).gracefulStop, ""},
		// A server that dies cuts connections; a call racing the cut may
		// have reached it, so only a keyed submission is resent.
		{"hard stop, keyed", (*fakeServer).stop, "after-failover"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := startFake("a")
			if err != nil {
				t.Fatal(err)
			}
			aStopped := false
			defer func() {
				if !aStopped {
					a.stop()
				}
			}()
			b, err := startFake("b")
			if err != nil {
				t.Fatal(err)
			}
			defer b.stop()

			c, err := client.Dial(a.addr + ", " + b.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx := ctxT(t)

			for range 3 {
				run, err := c.Submit(ctx, client.RunSpec{Type: "t", Group: "g"})
				if err != nil {
					t.Fatal(err)
				}
				if !strings.HasPrefix(run.ID, "a_") {
					t.Fatalf("run %s: want the first server while it is up", run.ID)
				}
			}

			tt.stop(a)
			aStopped = true

			run, err := c.Submit(ctx, client.RunSpec{Type: "t", Group: "g", Key: tt.key})
			if err != nil {
				t.Fatalf("submit after the first server stopped: %v", err)
			}
			if !strings.HasPrefix(run.ID, "b_") {
				t.Fatalf("run %s: want the second server", run.ID)
			}
			got, err := c.Get(ctx, run.ID)
			if err != nil || got.ID != run.ID {
				t.Errorf("Get on the second server = %v, %v", got, err)
			}
			if _, err := c.Submit(ctx, client.RunSpec{Type: "t", Group: "g"}); err != nil {
				t.Errorf("unkeyed submit on the second server: %v", err)
			}
		})
	}
}

func TestFailoverRead(t *testing.T) {
	a, err := startFake("a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := startFake("b")
	if err != nil {
		t.Fatal(err)
	}
	defer b.stop()
	c, err := client.Dial(a.addr + "," + b.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := ctxT(t)
	if _, err := c.List(ctx, client.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	a.stop()
	// Both servers would answer an empty page; the call must not fail.
	if _, err := c.List(ctx, client.ListOptions{}); err != nil {
		t.Fatalf("List right after the first server died: %v", err)
	}
	if n := len(b.authSeen()); n != 1 {
		t.Errorf("second server saw %d calls, want 1", n)
	}
}

func TestFailoverFirstDownAtStart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	b, err := startFake("b")
	if err != nil {
		t.Fatal(err)
	}
	defer b.stop()
	c, err := client.Dial(dead + "," + b.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	run, err := c.Submit(ctxT(t), client.RunSpec{Type: "t", Group: "g"})
	if err != nil || !strings.HasPrefix(run.ID, "b_") {
		t.Errorf("Submit = %v, %v", run, err)
	}
}

func TestWaitSurvivesFailover(t *testing.T) {
	// A Wait in flight when its server dies is retried on the next server
	// (there the run is unknown, so this ends in ErrNotFound rather than
	// ErrUnavailable — with a shared store it would go on waiting).
	a, err := startFake("a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := startFake("b")
	if err != nil {
		t.Fatal(err)
	}
	defer b.stop()
	c, err := client.Dial(a.addr + "," + b.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := ctxT(t)
	run, err := c.Submit(ctx, client.RunSpec{Type: "manual", Group: "g"})
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(100*time.Millisecond, a.stop)
	_, err = c.Wait(ctx, run.ID)
	if !errors.Is(err, client.ErrNotFound) {
		t.Errorf("err = %v, want ErrNotFound from the second server", err)
	}
}
