package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

func (en *env) hello(h Hello) (*Session, *fakeConn, error) {
	en.t.Helper()
	if h.Group == "" {
		h.Group = "g"
	}
	if len(h.Types) == 0 {
		h.Types = []string{"noop"}
	}
	c := &fakeConn{}
	s, _, err := en.e.Connect(en.ctx, h, c)
	synctest.Wait()
	return s, c, err
}

func TestWindowZeroMeansCapacityUnlessDraining(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		_, drained, err := en.hello(Hello{WorkerID: "w0", Capacity: 2, Window: 0, Draining: true})
		if err != nil {
			t.Fatal(err)
		}
		en.submit(SubmitSpec{}, SubmitSpec{})
		if n := len(drained.Tasks()); n != 0 {
			t.Fatalf("a draining worker got %d runs", n)
		}
		_, c, err := en.hello(Hello{WorkerID: "w1", Capacity: 2, Window: 0})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(c.Tasks()); n != 2 {
			t.Fatalf("a worker that named no window got %d runs, want its capacity (2)", n)
		}
	})
}

func TestDuplicateWorkerIDIsRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		_, c1, err := en.hello(Hello{WorkerID: "w", Capacity: 1, Instance: "p1"})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := en.hello(Hello{WorkerID: "w", Capacity: 1, Instance: "p2"}); !errors.Is(err, ErrDuplicateWorker) {
			t.Fatalf("second process with the same id: err %v, want ErrDuplicateWorker", err)
		}
		if c1.Closed() != "" {
			t.Fatalf("the first process was knocked off: %s", c1.Closed())
		}
		run := en.submit(SubmitSpec{})[0]
		if ts := c1.Tasks(); len(ts) != 1 || ts[0].RunID != run.ID {
			t.Fatalf("first process got %v", ids(ts))
		}
		// The same process reconnecting replaces its session.
		_, c3, err := en.hello(Hello{WorkerID: "w", Capacity: 1, Instance: "p1", Held: []RunRef{{RunID: run.ID, Attempt: 1}}})
		if err != nil {
			t.Fatalf("reconnect of the same instance: %v", err)
		}
		if c1.Closed() == "" || c3.Closed() != "" {
			t.Fatalf("after a reconnect: old closed %q, new closed %q", c1.Closed(), c3.Closed())
		}
	})
}

func TestUnansweredCancelFreesTheSlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		s, c := en.connect("w1", 1)
		run := en.submit(SubmitSpec{})[0]
		ack(s, c.Tasks()...)
		if _, err := en.e.Cancel(en.ctx, run.ID, "stop"); err != nil {
			t.Fatal(err)
		}
		next := en.submit(SubmitSpec{})[0]
		if n := len(c.Tasks()); n != 1 {
			t.Fatalf("%d tasks before the cancel was answered, want 1", n)
		}
		time.Sleep(10 * time.Second) // the worker never answers
		synctest.Wait()
		if ts := c.Tasks(); len(ts) != 2 || ts[1].RunID != next.ID {
			t.Fatalf("the slot of an unanswered cancel was not freed: tasks %v", ids(ts))
		}
	})
}

func TestTaskLargerThanTheWorkersLimitFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		_, c, err := en.hello(Hello{WorkerID: "w1", Capacity: 4, MaxMessage: 4096})
		if err != nil {
			t.Fatal(err)
		}
		big := json.RawMessage(`"` + strings.Repeat("x", 5000) + `"`)
		runs := en.submit(SubmitSpec{Payload: big}, SubmitSpec{Payload: json.RawMessage(`"small"`)})
		r := en.wantStatus(runs[0].ID, store.StatusFailed)
		if !strings.Contains(r.Error, "4096") {
			t.Fatalf("error %q does not name the limit", r.Error)
		}
		if ts := c.Tasks(); len(ts) != 1 || ts[0].RunID != runs[1].ID {
			t.Fatalf("tasks %v, want only the small run", ids(ts))
		}
	})
}

func TestInventedGroupsCostNoMemory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		var specs []SubmitSpec
		for i := range 2000 {
			specs = append(specs, SubmitSpec{Group: fmt.Sprintf("made-up-%d", i)})
		}
		en.submit(specs...)
		s, _ := en.connect("w1", 1)
		s.Close(ErrWorkerLeft)
		synctest.Wait()
		en.e.disp.mu.Lock()
		n := len(en.e.disp.groups)
		en.e.disp.mu.Unlock()
		if n != 0 {
			t.Fatalf("%d groups remembered with no worker connected", n)
		}
	})
}

// A worker that leaves while its group's first claim is still queued
// leaves no group behind: the claim finds nothing free, and the group,
// kept only for it, is forgotten when it ends (a leak of ~130 bytes per
// invented group name until this was fixed).
func TestGroupForgottenAfterClaimOfGoneWorker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		for i := range 50 {
			h := Hello{WorkerID: fmt.Sprintf("w%d", i), Group: fmt.Sprintf("gone-%d", i), Capacity: 1, Window: 1, Types: []string{"noop"}}
			s, _, err := en.e.Connect(en.ctx, h, &fakeConn{})
			if err != nil {
				t.Fatal(err)
			}
			s.Close(ErrWorkerLeft) // before its claim is taken by the committer
		}
		synctest.Wait()
		en.e.disp.mu.Lock()
		n := len(en.e.disp.groups)
		en.e.disp.mu.Unlock()
		if n != 0 {
			t.Fatalf("%d groups remembered after their workers left", n)
		}
	})
}

func TestLogsOnlyForRunsTheWorkerHolds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		s1, c1 := en.connect("w1", 1)
		s2, _ := en.connect("w2", 1)
		run := en.submit(SubmitSpec{})[0]
		holder, other := s1, s2
		if len(c1.Tasks()) == 0 {
			holder, other = s2, s1
		}
		other.Logs([]store.LogLine{{RunID: run.ID, Attempt: 1, Time: time.Now(), Stream: "stdout", Text: "forged"}})
		holder.Logs([]store.LogLine{{RunID: run.ID, Attempt: 1, Time: time.Now(), Stream: "stdout", Text: "real"}})
		synctest.Wait()
		lines, err := en.e.Logs(en.ctx, store.LogListParams{RunID: run.ID, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(lines) != 1 || lines[0].Text != "real" {
			t.Fatalf("stored lines %+v, want only the holder's", lines)
		}
	})
}

// A worker printing faster than the store writes is held back instead of
// queueing without bound.
func TestLogsPushBackWhenTheStoreIsSlow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en, fl := newFlakyEnv(t, nil)
		s, c := en.connect("w1", 1)
		en.submit(SubmitSpec{})
		task := c.Tasks()[0]
		fl.set("slow", 1)
		line := strings.Repeat("y", 64<<10)
		sent := make(chan int, 200)
		go func() {
			for i := range 200 { // 12.8 MiB
				s.Logs([]store.LogLine{{RunID: task.RunID, Attempt: task.Attempt, Time: time.Now(), Text: line}})
				sent <- i
			}
			close(sent)
		}()
		time.Sleep(time.Second) // the store is stuck in its slow transaction
		synctest.Wait()
		if n := len(sent); n*len(line) > 2*maxSessionLogBytes {
			t.Fatalf("%d lines (%d bytes) taken while the store was stuck", n, n*len(line))
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		n := 0
		for range sent {
			n++
		}
		if n != 200 {
			t.Fatalf("%d of 200 calls returned after the store recovered", n)
		}
	})
}

func TestResultThatIsNotJSONIsKeptAsText(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		s, c := en.connect("w1", 1)
		run := en.submit(SubmitSpec{})[0]
		task := c.Tasks()[0]
		s.Results([]Result{{RunID: task.RunID, Attempt: task.Attempt, Outcome: OutcomeSucceeded, Result: []byte("not {json \xff")}})
		synctest.Wait()
		r := en.wantStatus(run.ID, store.StatusSucceeded)
		var text string
		if err := json.Unmarshal(r.Result, &text); err != nil || !strings.HasPrefix(text, "not {json") {
			t.Fatalf("stored result %q (%v), want a JSON string of the text", r.Result, err)
		}
	})
}
