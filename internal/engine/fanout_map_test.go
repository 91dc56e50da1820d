package engine

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// mapParts is n parts {"i": 0}, {"i": 1}, ….
func mapParts(n int) []json.RawMessage {
	out := make([]json.RawMessage, n)
	for i := range out {
		out[i], _ = json.Marshal(map[string]int{"i": i})
	}
	return out
}

// mapAndWait sends a Map for task and returns its answer.
func mapAndWait(t *testing.T, s *Session, c *fakeConn, task Task, m MapRequest) MapAck {
	t.Helper()
	m.RunID, m.Attempt = task.RunID, task.Attempt
	before := len(c.MapAcks())
	s.Map(m)
	synctest.Wait()
	acks := c.MapAcks()
	if len(acks) != before+1 {
		t.Fatalf("%d map acks after a Map, want %d", len(acks), before+1)
	}
	return acks[len(acks)-1]
}

// children returns the tasks of parent's children among c's tasks.
func children(c *fakeConn, parent string) map[int]Task {
	out := map[int]Task{}
	for _, task := range c.Tasks() {
		if task.Parent == parent {
			out[task.Shard] = task
		}
	}
	return out
}

func TestMapReduce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		s, c := en.connect("w1", 10)
		run := en.submit(SubmitSpec{Priority: 3, Timeout: time.Minute})[0]
		mapper := c.Tasks()[0]
		s.Ack([]Ack{{RunID: mapper.RunID, Attempt: mapper.Attempt}})
		synctest.Wait()
		ack := mapAndWait(t, s, c, mapper, MapRequest{Parts: mapParts(3), Merge: "noop"})
		if ack.Error != "" || ack.Children != 3 || ack.Existing {
			t.Fatalf("map ack %+v", ack)
		}
		kids := children(c, run.ID)
		if len(kids) != 3 {
			t.Fatalf("%d children dispatched, want 3", len(kids))
		}
		for i, k := range kids {
			if k.ShardCount != 3 || string(k.Payload) != `{"i":`+string(rune('0'+i))+`}` || k.Type != "noop" {
				t.Errorf("child %d: %+v", i, k)
			}
			if r := en.get(k.RunID); r.Priority != 3 || r.Timeout != time.Minute {
				t.Errorf("child %d: priority %d, timeout %s", i, r.Priority, r.Timeout)
			}
		}
		// The children end while the handler still runs: no join.
		for i := range 3 {
			finishWith(s, kids[i], OutcomeSucceeded, `"r`+string(rune('0'+i))+`"`)
		}
		en.wantStatus(run.ID, store.StatusRunning)
		if n := len(c.Tasks()); n != 4 {
			t.Fatalf("%d tasks before the mapper returned, want 4 (no merge yet)", n)
		}
		// The handler returns: the run is their parent, and merges.
		finishWith(s, mapper, OutcomeSucceeded, `"ignored"`)
		if acks := c.Acks(); acks[len(acks)-1] != (ResultAck{RunID: run.ID, Attempt: 1, Accepted: true}) {
			t.Errorf("the mapper's result ack: %+v", acks[len(acks)-1])
		}
		parent := en.wantStatus(run.ID, store.StatusRunning)
		if parent.ShardCount != 3 || parent.WorkerID != "" {
			t.Errorf("released parent: %d shards, worker %q", parent.ShardCount, parent.WorkerID)
		}
		ts := c.Tasks()
		merge := ts[len(ts)-1]
		if !merge.Merge || merge.Parent != run.ID || !strings.Contains(string(merge.Payload), `"results":["r0","r1","r2"]`) {
			t.Fatalf("merge task %+v (payload %s)", merge, merge.Payload)
		}
		finishWith(s, merge, OutcomeSucceeded, `{"sum":3}`)
		if got := en.wantStatus(run.ID, store.StatusSucceeded); string(got.Result) != `{"sum":3}` {
			t.Errorf("parent's result %s", got.Result)
		}
	})
}

// A worker that dies after Map: the run's next attempt maps again and
// gets the children made the first time; none is made twice.
func TestMapIdempotentAcrossAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		s, c := en.connect("w1", 1)
		run := en.submit(SubmitSpec{})[0]
		mapper := c.Tasks()[0]
		if ack := mapAndWait(t, s, c, mapper, MapRequest{Parts: mapParts(2)}); ack.Children != 2 {
			t.Fatalf("map ack %+v", ack)
		}
		// The Map again, as after a reconnect: nothing more.
		if ack := mapAndWait(t, s, c, mapper, MapRequest{Parts: mapParts(5)}); !ack.Existing || ack.Children != 2 {
			t.Fatalf("second map ack %+v", ack)
		}
		s.Close(errors.New("worker killed"))
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		s2, c2 := en.connect("w2", 10)
		var again Task
		for _, task := range c2.Tasks() {
			if task.RunID == run.ID {
				again = task
			}
		}
		if again.Attempt != 2 {
			t.Fatalf("the mapper's next attempt: %+v (tasks %+v)", again, c2.Tasks())
		}
		if ack := mapAndWait(t, s2, c2, again, MapRequest{Parts: mapParts(4)}); !ack.Existing || ack.Children != 2 {
			t.Fatalf("map ack of the next attempt %+v", ack)
		}
		page, err := en.st.RunList(en.ctx, store.RunListParams{Parent: run.ID, Limit: 10})
		if err != nil || len(page.Runs) != 2 {
			t.Fatalf("children: %d, %v", len(page.Runs), err)
		}
		finishWith(s2, again, OutcomeSucceeded, "null")
		for _, task := range c2.Tasks() {
			if task.Parent == run.ID {
				finishWith(s2, task, OutcomeSucceeded, "1")
			}
		}
		if got := en.wantStatus(run.ID, store.StatusSucceeded); string(got.Result) != "[1,1]" {
			t.Errorf("parent's result %s", got.Result)
		}
	})
}

// A mapper whose handler fails for good: its children are cancelled and
// it never joins.
func TestMapThenFail(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		s, c := en.connect("w1", 10)
		run := en.submit(SubmitSpec{})[0]
		mapper := c.Tasks()[0]
		mapAndWait(t, s, c, mapper, MapRequest{Parts: mapParts(3)})
		kids := children(c, run.ID)
		finishWith(s, kids[0], OutcomeSucceeded, "0")
		finishWith(s, mapper, OutcomeFailed, "after map")
		en.wantStatus(run.ID, store.StatusFailed)
		en.wantStatus(kids[0].RunID, store.StatusSucceeded)
		for _, i := range []int{1, 2} {
			en.wantStatus(kids[i].RunID, store.StatusCancelled)
		}
		if n := len(c.Cancels()); n != 2 {
			t.Errorf("worker told to cancel %d children, want 2", n)
		}
	})
}

// A Map that cannot be taken is answered with an error and makes
// nothing.
func TestMapRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		s, c := en.connect("w1", 10)
		run := en.submit(SubmitSpec{})[0]
		mapper := c.Tasks()[0]
		stale := mapper
		stale.Attempt = 2
		big := make([]json.RawMessage, MaxMapParts+1)
		for i := range big {
			big[i] = json.RawMessage("1")
		}
		for name, c2 := range map[string]struct {
			task Task
			m    MapRequest
			want string
		}{
			"another attempt": {stale, MapRequest{Parts: mapParts(1)}, "not held by this worker"},
			"no parts":        {mapper, MapRequest{}, "parts"},
			"too many parts":  {mapper, MapRequest{Parts: big}, "parts"},
			"bad JSON":        {mapper, MapRequest{Parts: []json.RawMessage{json.RawMessage("{")}}, "parts[0]"},
			"min success":     {mapper, MapRequest{Parts: mapParts(2), MinSuccess: 3}, "min_success"},
		} {
			if ack := mapAndWait(t, s, c, c2.task, c2.m); !strings.Contains(ack.Error, c2.want) || ack.Children != 0 {
				t.Errorf("%s: ack %+v, want an error naming %q", name, ack, c2.want)
			}
		}
		if n := len(children(c, run.ID)); n != 0 {
			t.Fatalf("%d children made by refused maps", n)
		}
		// A child cannot map.
		mapAndWait(t, s, c, mapper, MapRequest{Parts: mapParts(1)})
		kid := children(c, run.ID)[0]
		if ack := mapAndWait(t, s, c, kid, MapRequest{Parts: mapParts(1)}); !strings.Contains(ack.Error, "cannot map") {
			t.Errorf("a child's map: %+v", ack)
		}
	})
}

// Cancelling a run that mapped cancels its children too.
func TestMapCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		s, c := en.connect("w1", 10)
		run := en.submit(SubmitSpec{})[0]
		mapAndWait(t, s, c, c.Tasks()[0], MapRequest{Parts: mapParts(2)})
		if _, err := en.e.Cancel(en.ctx, run.ID, "enough"); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		for _, k := range children(c, run.ID) {
			en.wantStatus(k.RunID, store.StatusCancelled)
		}
	})
}

// A result that says it mapped releases the run even where the session
// does not know of the Map (the worker reconnected to another server).
func TestMapReleasedByTheResult(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		s, c := en.connect("w1", 10)
		run := en.submit(SubmitSpec{})[0]
		mapper := c.Tasks()[0]
		mapAndWait(t, s, c, mapper, MapRequest{Parts: mapParts(1)})
		en.e.disp.mu.Lock()
		en.e.disp.flights[run.ID].mapped = false
		en.e.disp.mu.Unlock()
		s.Results([]Result{{RunID: run.ID, Attempt: 1, Outcome: OutcomeSucceeded, Mapped: true}})
		synctest.Wait()
		en.wantStatus(run.ID, store.StatusRunning)
		finishWith(s, children(c, run.ID)[0], OutcomeSucceeded, `"x"`)
		if got := en.wantStatus(run.ID, store.StatusSucceeded); string(got.Result) != `["x"]` {
			t.Errorf("parent's result %s", got.Result)
		}
	})
}

// Cancelling, on another server, a run whose worker mapped on the first
// cancels its children too: the cancelling server looks its fan-out up.
func TestMapCancelledOnAnotherServer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en1, en2, _ := shared(t)
		s, c := en1.connect("w1", 10)
		run := en1.submit(SubmitSpec{})[0]
		mapAndWait(t, s, c, c.Tasks()[0], MapRequest{Parts: mapParts(2)})
		if _, err := en2.e.Cancel(en2.ctx, run.ID, "from s2"); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		page, err := en2.st.RunList(en2.ctx, store.RunListParams{Parent: run.ID, Limit: 10})
		if err != nil || len(page.Runs) != 2 {
			t.Fatalf("children: %d, %v", len(page.Runs), err)
		}
		for _, k := range page.Runs {
			if k.Status != store.StatusCancelled {
				t.Errorf("child %s: %s, want cancelled", k.ID, k.Status)
			}
		}
	})
}

// Store faults on a Map and on the release: each is tried again until it
// commits; a Map whose commit's answer was lost finds its children made
// and dispatches them; nothing is made twice.
func TestMapUnderStoreFaults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en, fl := newFlakyEnv(t, nil)
		s, c := en.connect("w1", 10)
		run := en.submit(SubmitSpec{})[0]
		mapper := c.Tasks()[0]
		ack(s, mapper)
		fl.set("FanoutMap", 3)
		fl.set("commit", 1)
		s.Map(MapRequest{RunID: run.ID, Attempt: 1, Parts: mapParts(3)})
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if acks := c.MapAcks(); len(acks) != 1 || acks[0].Children != 3 || acks[0].Error != "" {
			t.Fatalf("map acks %+v", acks)
		}
		kids := children(c, run.ID)
		if len(kids) != 3 {
			t.Fatalf("%d children dispatched, want 3", len(kids))
		}
		for i := range 3 {
			finishWith(s, kids[i], OutcomeSucceeded, "1")
		}
		// The children have all ended: the release decides the parent, even
		// when its commit's answer was lost.
		fl.set("FanoutRelease", 3)
		fl.set("commit", 1)
		finishWith(s, mapper, OutcomeSucceeded, "null")
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if got := en.wantStatus(run.ID, store.StatusSucceeded); string(got.Result) != "[1,1,1]" {
			t.Errorf("parent's result %s", got.Result)
		}
		page, err := en.st.RunList(en.ctx, store.RunListParams{Parent: run.ID, Limit: 10})
		if err != nil || len(page.Runs) != 3 {
			t.Fatalf("children stored: %d, %v", len(page.Runs), err)
		}
	})
}
