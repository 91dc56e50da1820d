package engine

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// connectHello connects a worker with a full Hello (commands, group g);
// it heartbeats every half interval until its session closes or the test
// ends.
func (en *env) connectHello(h Hello) (*Session, *fakeConn) {
	en.t.Helper()
	if h.Capacity == 0 {
		h.Capacity = max(1, h.Window)
	}
	s, c, err := en.hello(h)
	if err != nil {
		en.t.Fatal(err)
	}
	en.keepAlive(s)
	return s, c
}

func workerInfo(t *testing.T, e *Engine, id string) WorkerInfo {
	t.Helper()
	for _, w := range e.Workers() {
		if w.ID == id {
			return w
		}
	}
	t.Fatalf("worker %s not listed", id)
	return WorkerInfo{}
}

// TestDrainWorkerRoutesNewRunsElsewhere: a drained worker keeps and
// finishes the runs it holds, gets nothing new while another worker of the
// group takes every new run, and takes runs again after resume.
func TestDrainWorkerRoutesNewRunsElsewhere(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		s1, c1 := en.connect("w1", 2)
		held := en.submit(SubmitSpec{})
		if len(c1.Tasks()) != 1 {
			t.Fatalf("w1 got %d runs, want 1", len(c1.Tasks()))
		}
		info, err := en.e.DrainWorker("w1", false)
		if err != nil {
			t.Fatal(err)
		}
		if !info.Draining || info.Leaving {
			t.Fatalf("after drain: %+v", info)
		}
		if got := c1.Drains(); !slices.Equal(got, []bool{false}) {
			t.Fatalf("w1 was sent drains %v, want [false]", got)
		}
		s1.SetWindow(0) // the worker answers a drain with a window of zero
		_, c2 := en.connect("w2", 4)
		runs := en.submit(SubmitSpec{}, SubmitSpec{}, SubmitSpec{})
		if got := ids(c2.Tasks()); !slices.Equal(got, ids(tasksOf(runs))) {
			t.Fatalf("w2 got %v, want every new run %v", got, ids(tasksOf(runs)))
		}
		if len(c1.Tasks()) != 1 {
			t.Fatalf("drained w1 got %d runs", len(c1.Tasks()))
		}
		// What it held finishes normally.
		finish(s1, OutcomeSucceeded, c1.Tasks()[0])
		en.wantStatus(held[0].ID, store.StatusSucceeded)
		if !workerInfo(t, en.e, "w1").Draining {
			t.Fatal("w1 not listed as draining")
		}

		if _, err := en.e.DrainWorker("w1", true); err != nil {
			t.Fatal(err)
		}
		if got := c1.Drains(); !slices.Equal(got, []bool{false, true}) {
			t.Fatalf("w1 was sent drains %v, want [false true]", got)
		}
		s1.SetWindow(2) // the worker announces its window again
		synctest.Wait()
		more := en.submit(SubmitSpec{})
		if got := ids(c1.Tasks()); len(got) != 2 || got[1] != more[0].ID {
			t.Fatalf("resumed w1 got %v, want the new run %s", got, more[0].ID)
		}
		if workerInfo(t, en.e, "w1").Draining {
			t.Fatal("w1 still listed as draining after resume")
		}
	})
}

func tasksOf(runs []*store.Run) []Task {
	out := make([]Task, len(runs))
	for i, r := range runs {
		out[i] = Task{RunID: r.ID}
	}
	return out
}

// TestDrainStopsDispatchBeforeTheWorkerAnswers: the server stops sending
// at once; it does not wait for the worker's zero window.
func TestDrainStopsDispatchBeforeTheWorkerAnswers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		_, c := en.connect("w1", 4)
		if _, err := en.e.DrainWorker("w1", false); err != nil {
			t.Fatal(err)
		}
		runs := en.submit(SubmitSpec{})
		if len(c.Tasks()) != 0 {
			t.Fatalf("drained worker got %v", ids(c.Tasks()))
		}
		en.wantStatus(runs[0].ID, store.StatusQueued)
	})
}

func TestControlErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		if _, err := en.e.DrainWorker("nope", false); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("drain unknown worker: %v, want ErrNotFound", err)
		}
		if _, err := en.e.ShutdownWorker("nope", false); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("shutdown unknown worker: %v, want ErrNotFound", err)
		}
		if _, err := en.e.WorkerCommand(en.ctx, "nope", "ping", nil, 0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("command to unknown worker: %v, want ErrNotFound", err)
		}
		if _, err := en.e.GroupCommand(en.ctx, "g", "ping", nil, 0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("command to empty group: %v, want ErrNotFound", err)
		}
		s, _ := en.connect("w1", 1)
		s.Close(errors.New("network"))
		if _, err := en.e.DrainWorker("w1", false); !errors.Is(err, ErrWorkerDisconnected) {
			t.Fatalf("drain a disconnected worker: %v, want ErrWorkerDisconnected", err)
		}
		if _, err := en.e.WorkerCommand(en.ctx, "w1", "ping", nil, 0); !errors.Is(err, ErrWorkerDisconnected) {
			t.Fatalf("command to a disconnected worker: %v, want ErrWorkerDisconnected", err)
		}
		for _, tc := range []struct {
			name, args string
			timeout    time.Duration
			field      string
		}{
			{"", "", 0, "name"},
			{strings.Repeat("x", 201), "", 0, "name"},
			{"ping", "{", 0, "args"},
			{"ping", "", -time.Second, "timeout"},
			{"ping", "", MaxCommandTimeout + time.Second, "timeout"},
		} {
			_, err := en.e.WorkerCommand(en.ctx, "w1", tc.name, json.RawMessage(tc.args), tc.timeout)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Errorf("command %q args %q timeout %v: %v, want a field error on %s", tc.name, tc.args, tc.timeout, err, tc.field)
			}
		}
	})
}

// TestDrainSurvivesReconnect: a drained worker whose stream breaks and
// comes back (same ID, old session still here) stays drained and is told
// so again; resume on the new session lets it work.
func TestDrainSurvivesReconnect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		s1, _ := en.connect("w1", 2)
		if _, err := en.e.DrainWorker("w1", false); err != nil {
			t.Fatal(err)
		}
		s1.Close(errors.New("connection reset"))
		// A fresh process under the same ID announces its full window.
		_, c2 := en.connect("w1", 2)
		if got := c2.Drains(); !slices.Equal(got, []bool{false}) {
			t.Fatalf("reconnected worker was sent drains %v, want [false]", got)
		}
		runs := en.submit(SubmitSpec{})
		if len(c2.Tasks()) != 0 {
			t.Fatalf("reconnected drained worker got %v", ids(c2.Tasks()))
		}
		if !workerInfo(t, en.e, "w1").Draining {
			t.Fatal("reconnected worker not listed as draining")
		}
		if _, err := en.e.DrainWorker("w1", true); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got := ids(c2.Tasks()); !slices.Equal(got, []string{runs[0].ID}) {
			t.Fatalf("resumed worker got %v, want %s", got, runs[0].ID)
		}
	})
}

// TestShutdownWorker: shutdown and restart are sent, nothing more is
// dispatched, drain/resume are refused, and the restarted process (same
// ID) does not inherit the drain.
func TestShutdownWorker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		s1, c1 := en.connect("w1", 2)
		info, err := en.e.ShutdownWorker("w1", true)
		if err != nil {
			t.Fatal(err)
		}
		if !info.Leaving || !info.Draining {
			t.Fatalf("after restart: %+v", info)
		}
		if got := c1.Shutdowns(); !slices.Equal(got, []bool{true}) {
			t.Fatalf("sent shutdowns %v, want [true]", got)
		}
		if _, err := en.e.DrainWorker("w1", true); !errors.Is(err, ErrWorkerLeaving) {
			t.Fatalf("resume a leaving worker: %v, want ErrWorkerLeaving", err)
		}
		if _, err := en.e.ShutdownWorker("w1", false); err != nil {
			t.Fatalf("shutdown twice: %v", err)
		}
		runs := en.submit(SubmitSpec{})
		if len(c1.Tasks()) != 0 {
			t.Fatalf("leaving worker got %v", ids(c1.Tasks()))
		}
		s1.Close(errors.New("context canceled")) // it drained and exited
		_, c2 := en.connect("w1", 2)             // the re-executed process
		if len(c2.Drains()) != 0 {
			t.Fatalf("restarted worker was sent drains %v", c2.Drains())
		}
		if got := ids(c2.Tasks()); !slices.Equal(got, []string{runs[0].ID}) {
			t.Fatalf("restarted worker got %v, want %s", got, runs[0].ID)
		}
	})
}

// reply answers the n-th command sent on c (after waiting for it).
func reply(t *testing.T, s *Session, c *fakeConn, n int, result, errMsg string) sentCommand {
	t.Helper()
	synctest.Wait()
	cmds := c.Commands()
	if len(cmds) <= n {
		t.Fatalf("%d commands sent, want more than %d", len(cmds), n)
	}
	s.CommandReply(cmds[n].ID, json.RawMessage(result), errMsg)
	return cmds[n]
}

func TestWorkerCommand(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		s, c := en.connectHello(Hello{WorkerID: "w1", Window: 1, Commands: []string{"ping", "slow"}})

		type res struct {
			r   CommandReply
			err error
		}
		call := func(name, args string, timeout time.Duration) <-chan res {
			ch := make(chan res, 1)
			go func() {
				r, err := en.e.WorkerCommand(en.ctx, "w1", name, json.RawMessage(args), timeout)
				ch <- res{r, err}
			}()
			return ch
		}

		// Answered.
		ch := call("ping", `{"n":1}`, 0)
		sent := reply(t, s, c, 0, `{"pong":true}`, "")
		if sent.Name != "ping" || sent.Args != `{"n":1}` || sent.Timeout != DefaultCommandTimeout {
			t.Fatalf("sent %+v", sent)
		}
		got := <-ch
		if got.err != nil || !got.r.OK() || string(got.r.Result) != `{"pong":true}` || got.r.Worker != "w1" || got.r.Server != "s1" {
			t.Fatalf("ping: %+v", got)
		}

		// The handler failed.
		ch = call("ping", "", time.Second)
		reply(t, s, c, 1, `{"ignored":1}`, "boom")
		if got := <-ch; got.err != nil || got.r.OK() || got.r.Error != "boom" || got.r.Result != nil {
			t.Fatalf("failed command: %+v", got)
		}

		// Not registered: answered at once, nothing sent.
		got = <-call("reboot", "", time.Minute)
		if got.err != nil || !strings.Contains(got.r.Error, `unknown command "reboot"`) || !strings.Contains(got.r.Error, "ping, slow") {
			t.Fatalf("unknown command: %+v", got)
		}
		if n := len(c.Commands()); n != 2 {
			t.Fatalf("%d commands sent, want 2 (unknown ones are not sent)", n)
		}

		// No answer in time: "timeout" exactly at the timeout; the late
		// answer is dropped.
		began := time.Now()
		got = <-call("slow", "", 3*time.Second)
		if got.err != nil || got.r.Error != CommandTimeout {
			t.Fatalf("slow command: %+v", got)
		}
		if took := time.Since(began); took != 3*time.Second {
			t.Fatalf("timed out after %v, want 3s", took)
		}
		reply(t, s, c, 2, `{}`, "") // late: nobody waits
		en.e.disp.mu.Lock()
		left := len(s.ctl.pending)
		en.e.disp.mu.Unlock()
		if left != 0 {
			t.Fatalf("%d pending commands left", left)
		}

		// The caller goes away.
		ctx, cancel := context.WithCancel(en.ctx)
		errc := make(chan error, 1)
		go func() {
			_, err := en.e.WorkerCommand(ctx, "w1", "slow", nil, time.Minute)
			errc <- err
		}()
		synctest.Wait()
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled caller: %v", err)
		}
		en.e.disp.mu.Lock()
		left = len(s.ctl.pending)
		en.e.disp.mu.Unlock()
		if left != 0 {
			t.Fatalf("%d pending commands left after the caller went away", left)
		}

		// The stream closes while a command waits.
		ch = call("slow", "", time.Minute)
		synctest.Wait()
		s.Close(errors.New("connection reset"))
		if got := <-ch; got.err != nil || got.r.Error != CommandDisconnected {
			t.Fatalf("command when the stream closed: %+v", got)
		}
	})
}

// TestCommandReplyAfterReconnectIsNotMisrouted: a reply the worker kept
// across a reconnect names a command of the old session; it cannot answer
// a command of the new one.
func TestCommandReplyAfterReconnectIsNotMisrouted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		s1, c1 := en.connectHello(Hello{WorkerID: "w1", Window: 1, Commands: []string{"ping"}})
		ch := make(chan CommandReply, 1)
		go func() {
			r, _ := en.e.WorkerCommand(en.ctx, "w1", "ping", nil, time.Minute)
			ch <- r
		}()
		synctest.Wait()
		old := c1.Commands()[0]
		s1.Close(errors.New("connection reset"))
		if r := <-ch; r.Error != CommandDisconnected {
			t.Fatalf("old command: %+v", r)
		}
		s2, c2 := en.connectHello(Hello{WorkerID: "w1", Window: 1, Commands: []string{"ping"}})
		go func() {
			r, _ := en.e.WorkerCommand(en.ctx, "w1", "ping", nil, time.Minute)
			ch <- r
		}()
		synctest.Wait()
		cur := c2.Commands()[0]
		if cur.ID == old.ID {
			t.Fatalf("command id %s reused", cur.ID)
		}
		s2.CommandReply(old.ID, json.RawMessage(`"stale"`), "")
		synctest.Wait()
		select {
		case r := <-ch:
			t.Fatalf("the stale reply answered the new command: %+v", r)
		default:
		}
		s2.CommandReply(cur.ID, json.RawMessage(`"fresh"`), "")
		if r := <-ch; string(r.Result) != `"fresh"` {
			t.Fatalf("new command: %+v", r)
		}
	})
}

// TestGroupCommand: every connected worker of the group is asked at once;
// each appears once, ordered by id: answers, errors, the one that does not
// answer in time ("timeout", after exactly the timeout) and the one that
// did not register the command (answered at once).
func TestGroupCommand(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		cmds := []string{"stats"}
		sA, cA := en.connectHello(Hello{WorkerID: "a", Window: 1, Commands: cmds})
		sB, cB := en.connectHello(Hello{WorkerID: "b", Window: 1, Commands: cmds})
		_, cC := en.connectHello(Hello{WorkerID: "c", Window: 1, Commands: cmds})
		en.connectHello(Hello{WorkerID: "d", Window: 1})
		_, cOther := en.connectHello(Hello{WorkerID: "e", Group: "other", Window: 1, Commands: cmds})
		gone, _ := en.connectHello(Hello{WorkerID: "f", Window: 1, Commands: cmds})
		gone.Close(errors.New("connection reset")) // suspect: not asked

		began := time.Now()
		ch := make(chan []CommandReply, 1)
		go func() {
			rs, err := en.e.GroupCommand(en.ctx, "g", "stats", json.RawMessage(`{"x":1}`), 2*time.Second)
			if err != nil {
				t.Error(err)
			}
			ch <- rs
		}()
		synctest.Wait()
		for _, c := range []*fakeConn{cA, cB, cC} {
			if n := len(c.Commands()); n != 1 {
				t.Fatalf("a worker of the group was sent %d commands", n)
			}
		}
		if n := len(cOther.Commands()); n != 0 {
			t.Fatalf("a worker of another group was sent %d commands", n)
		}
		reply(t, sB, cB, 0, "", "busy")
		reply(t, sA, cA, 0, `{"running":0}`, "")
		rs := <-ch
		if took := time.Since(began); took != 2*time.Second {
			t.Fatalf("group command took %v, want the 2s timeout", took)
		}
		var got []string
		for _, r := range rs {
			got = append(got, r.Worker+"="+string(r.Result)+"/"+r.Error)
		}
		want := []string{`a={"running":0}/`, "b=/busy", "c=/timeout", `d=/unknown command "stats" (worker d answers: none)`}
		if !slices.Equal(got, want) {
			t.Fatalf("replies\n%q\nwant\n%q", got, want)
		}
	})
}
