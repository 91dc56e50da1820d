package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/pluto-sched/pluto/internal/store"
)

// finishWith reports one task's result.
func finishWith(s *Session, t Task, outcome Outcome, result string) {
	r := Result{RunID: t.RunID, Attempt: t.Attempt, Outcome: outcome}
	if outcome == OutcomeSucceeded {
		r.Result = []byte(result)
	} else {
		r.Error = "boom " + result
	}
	s.Results([]Result{r})
	synctest.Wait()
}

func TestFanoutShardsJoinInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		s, c := en.connect("w1", 10)
		p := en.submit(SubmitSpec{Shards: 3, Payload: json.RawMessage(`{"x":1}`)})[0]
		if p.Status != store.StatusRunning || p.ShardCount != 3 || p.ParentID != "" {
			t.Fatalf("parent: %s, %d shards, parent %q", p.Status, p.ShardCount, p.ParentID)
		}
		ts := c.Tasks()
		if len(ts) != 3 {
			t.Fatalf("%d tasks, want 3", len(ts))
		}
		seen := map[int]Task{}
		for _, task := range ts {
			if task.Parent != p.ID || task.ShardCount != 3 || string(task.Payload) != `{"x":1}` {
				t.Errorf("task %+v", task)
			}
			seen[task.Shard] = task
		}
		// They end out of order; the parent's result is in shard order.
		for _, i := range []int{2, 0} {
			finishWith(s, seen[i], OutcomeSucceeded, fmt.Sprint(i))
		}
		en.wantStatus(p.ID, store.StatusRunning)
		finishWith(s, seen[1], OutcomeSucceeded, "1")
		got := en.wantStatus(p.ID, store.StatusSucceeded)
		if string(got.Result) != "[0,1,2]" {
			t.Errorf("parent's result %s, want [0,1,2]", got.Result)
		}
		page, err := en.st.RunList(en.ctx, store.RunListParams{Parent: p.ID, Limit: 10})
		if err != nil || len(page.Runs) != 3 {
			t.Fatalf("children listed: %d, %v", len(page.Runs), err)
		}
	})
}

func TestFanoutFailsAndCancelsTheRest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		s, c := en.connect("w1", 10)
		p := en.submit(SubmitSpec{Shards: 3})[0]
		ts := c.Tasks()
		finishWith(s, ts[0], OutcomeSucceeded, "0")
		finishWith(s, ts[1], OutcomeFailed, "in shard")
		got := en.wantStatus(p.ID, store.StatusFailed)
		if !strings.Contains(got.Error, "1 of 3 children did not succeed") || !strings.Contains(got.Error, ts[1].RunID) {
			t.Errorf("parent's error %q", got.Error)
		}
		en.wantStatus(ts[2].RunID, store.StatusCancelled)
		if cs := c.Cancels(); len(cs) != 1 || cs[0].RunID != ts[2].RunID {
			t.Errorf("worker told to cancel %v, want the third child", cs)
		}
	})
}

func TestFanoutMinSuccess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		s, c := en.connect("w1", 10)
		p := en.submit(SubmitSpec{Parts: []json.RawMessage{json.RawMessage(`"a"`), json.RawMessage(`"b"`), json.RawMessage(`"c"`), json.RawMessage(`"d"`)}, MinSuccess: 0.5})[0]
		ts := c.Tasks()
		byShard := map[int]Task{}
		for _, task := range ts {
			byShard[task.Shard] = task
		}
		if string(byShard[2].Payload) != `"c"` {
			t.Errorf("shard 2's payload %s, want its part", byShard[2].Payload)
		}
		finishWith(s, byShard[0], OutcomeFailed, "")
		finishWith(s, byShard[1], OutcomeSucceeded, `"B"`)
		finishWith(s, byShard[2], OutcomeFailed, "")
		en.wantStatus(p.ID, store.StatusRunning)
		finishWith(s, byShard[3], OutcomeSucceeded, `"D"`)
		got := en.wantStatus(p.ID, store.StatusSucceeded)
		if string(got.Result) != `[null,"B",null,"D"]` {
			t.Errorf("result %s", got.Result)
		}
	})
}

func TestFanoutMerge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		s, c := en.connect("w1", 10, "noop", "sum")
		p := en.submit(SubmitSpec{Shards: 2, Merge: "sum"})[0]
		ts := c.Tasks()
		finishWith(s, ts[0], OutcomeSucceeded, "1")
		finishWith(s, ts[1], OutcomeSucceeded, "2")
		en.wantStatus(p.ID, store.StatusRunning)
		ts = c.Tasks()
		if len(ts) != 3 || ts[2].Type != "sum" {
			t.Fatalf("tasks %v, want the merge run third", ids(ts))
		}
		var in struct {
			Parent  string
			Results []int
		}
		if err := json.Unmarshal(ts[2].Payload, &in); err != nil || in.Parent != p.ID || fmt.Sprint(in.Results) != "[1 2]" {
			t.Fatalf("merge payload %s (%v)", ts[2].Payload, err)
		}
		finishWith(s, ts[2], OutcomeSucceeded, "3")
		got := en.wantStatus(p.ID, store.StatusSucceeded)
		if string(got.Result) != "3" {
			t.Errorf("parent's result %s, want the merge's", got.Result)
		}
	})
}

func TestFanoutCancelParent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		_, c := en.connect("w1", 10)
		p := en.submit(SubmitSpec{Shards: 3})[0]
		if _, err := en.e.Cancel(en.ctx, p.ID, ""); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		en.wantStatus(p.ID, store.StatusCancelled)
		for _, task := range c.Tasks() {
			en.wantStatus(task.RunID, store.StatusCancelled)
		}
		if n := len(c.Cancels()); n != 3 {
			t.Errorf("worker told to cancel %d runs, want 3", n)
		}
		// Retried, it runs every child again.
		if _, err := en.e.Retry(en.ctx, p.ID); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		en.wantStatus(p.ID, store.StatusRunning)
		if n := len(c.Tasks()); n != 6 {
			t.Errorf("%d tasks after the retry, want 3 more", n)
		}
		if _, err := en.e.Retry(en.ctx, p.ID); !errors.Is(err, store.ErrConflict) {
			t.Errorf("retry of a running parent: %v, want a conflict", err)
		}
	})
}

// Retrying a failed parent reruns only the children that did not succeed;
// the parent joins again with the old results and the new ones.
func TestFanoutRetryRerunsFailedChildren(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		s, c := en.connect("w1", 10)
		p := en.submit(SubmitSpec{Shards: 3})[0]
		byShard := map[int]Task{}
		for _, task := range c.Tasks() {
			byShard[task.Shard] = task
		}
		finishWith(s, byShard[0], OutcomeSucceeded, "0")
		finishWith(s, byShard[1], OutcomeFailed, "")
		en.wantStatus(p.ID, store.StatusFailed)
		en.wantStatus(byShard[2].RunID, store.StatusCancelled)

		r, err := en.e.Retry(en.ctx, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if r.Status != store.StatusRunning || r.Attempt != 1 || r.Error != "" || !r.FinishedAt.IsZero() {
			t.Fatalf("retried parent: %s attempt %d, error %q, finished %v", r.Status, r.Attempt, r.Error, r.FinishedAt)
		}
		again := c.Tasks()[3:]
		if len(again) != 2 {
			t.Fatalf("%d children rerun, want the failed and the cancelled one", len(again))
		}
		for _, task := range again {
			if task.Shard == 0 {
				t.Fatalf("the succeeded shard ran again")
			}
			finishWith(s, task, OutcomeSucceeded, fmt.Sprint(task.Shard*10))
		}
		got := en.wantStatus(p.ID, store.StatusSucceeded)
		if string(got.Result) != "[0,10,20]" {
			t.Errorf("result %s, want [0,10,20]", got.Result)
		}
	})
}

// A parent whose merge failed merges again when retried, with a new
// merge run (the first one keeps its key).
func TestFanoutRetryMergesAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		s, c := en.connect("w1", 10, "noop", "sum")
		p := en.submit(SubmitSpec{Shards: 2, Merge: "sum"})[0]
		ts := c.Tasks()
		finishWith(s, ts[0], OutcomeSucceeded, "1")
		finishWith(s, ts[1], OutcomeSucceeded, "2")
		finishWith(s, c.Tasks()[2], OutcomeFailed, "merge")
		en.wantStatus(p.ID, store.StatusFailed)
		if _, err := en.e.Retry(en.ctx, p.ID); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		ts = c.Tasks()
		if len(ts) != 4 || ts[3].Type != "sum" || ts[3].RunID == ts[2].RunID {
			t.Fatalf("tasks %v, want a new merge run only", ids(ts))
		}
		finishWith(s, ts[3], OutcomeSucceeded, "3")
		if got := en.wantStatus(p.ID, store.StatusSucceeded); string(got.Result) != "3" {
			t.Errorf("result %s", got.Result)
		}
	})
}

func TestFanoutValidation(t *testing.T) {
	en := newEnv(t, nil)
	parts := []json.RawMessage{json.RawMessage(`1`)}
	for _, c := range []struct {
		specs []SubmitSpec
		field string
	}{
		{[]SubmitSpec{{Shards: 2, Parts: parts}}, "parts"},
		{[]SubmitSpec{{Shards: -1}}, "shards"},
		{[]SubmitSpec{{Parts: []json.RawMessage{}}}, "parts"},
		{[]SubmitSpec{{Shards: store.MaxFanout + 1}}, "shards"},
		{[]SubmitSpec{{Shards: 3, MinSuccess: 4}}, "min_success"},
		{[]SubmitSpec{{Shards: 3, MinSuccess: 1.5}}, "min_success"},
		{[]SubmitSpec{{Shards: 3, MinSuccess: -1}}, "min_success"},
		{[]SubmitSpec{{Merge: "m"}}, "merge"},
		{[]SubmitSpec{{MinSuccess: 1}}, "min_success"},
		{[]SubmitSpec{{}, {Shards: 2}}, "runs[1].shards"},
		{[]SubmitSpec{{Parts: []json.RawMessage{json.RawMessage(`{`)}}}, "parts[0]"},
	} {
		for i := range c.specs {
			c.specs[i].Type, c.specs[i].Group = "t", "g"
		}
		_, err := en.e.Submit(en.ctx, c.specs)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("%+v: %v, want a field error on %s", c.specs, err, c.field)
		}
	}
}
