package engine

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// A sharded job's run waits as any run of the job, then splits when
// dispatched: its children carry the parent, their index and the total;
// the parent (the job's run for the slot) ends with their results, and the
// job downstream of it runs once for the slot.
func TestSplitShardedJob(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		en.putJob(store.Job{Name: "split", Shards: 3})
		en.putJob(store.Job{Name: "after", DependsOn: []string{"split"}})
		at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
		run, _, err := en.e.JobTriggerSlot(en.ctx, "split", nil, at, false)
		if err != nil {
			t.Fatal(err)
		}
		if run.Split == nil || run.Split.Shards != 3 || run.Status != store.StatusQueued {
			t.Fatalf("the job's run: %s, split %+v", run.Status, run.Split)
		}
		s, c := en.connect("w1", 10)
		ts := c.Tasks()
		if len(ts) != 3 {
			t.Fatalf("%d tasks, want the 3 children", len(ts))
		}
		p := en.wantStatus(run.ID, store.StatusRunning)
		if p.ShardCount != 3 || p.Split != nil || p.WorkerID != "" || !p.LogicalTime.Equal(at) || p.Job != "split" {
			t.Fatalf("parent after the split: %+v", p)
		}
		for _, task := range ts {
			if task.Parent != run.ID || task.ShardCount != 3 {
				t.Fatalf("child task %+v", task)
			}
			finishWith(s, task, OutcomeSucceeded, fmt.Sprint(task.Shard))
		}
		got := en.wantStatus(run.ID, store.StatusSucceeded)
		if string(got.Result) != "[0,1,2]" {
			t.Errorf("result %s", got.Result)
		}
		after := en.jobRuns("after")
		if len(after) != 1 || !after[0].LogicalTime.Equal(at) {
			t.Fatalf("downstream runs %d, want one for the slot", len(after))
		}
		ts = c.Tasks()
		if last := ts[len(ts)-1]; last.RunID != after[0].ID || last.Parent != "" {
			t.Fatalf("last task %+v, want the downstream run", last)
		}
	})
}

// A broadcast makes one child per healthy worker of the group at dispatch;
// a worker that connects later gets none. A plain broadcast's handler is
// not told a shard; a shard-broadcast's is.
func TestBroadcast(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		conns := map[string]*fakeConn{}
		sessions := map[string]*Session{}
		for _, id := range []string{"w-b", "w-a", "w-c"} {
			sessions[id], conns[id] = en.connect(id, 1)
		}
		p := en.submit(SubmitSpec{Routing: store.RoutingBroadcast})[0]
		if p.Split == nil || p.Split.Broadcast != store.RoutingBroadcast {
			t.Fatalf("broadcast run split %+v", p.Split)
		}
		_, late := en.connect("w-d", 1)
		for id, c := range conns {
			ts := c.Tasks()
			if len(ts) != 1 || ts[0].Parent != p.ID || ts[0].ShardCount != 0 {
				t.Fatalf("%s got %+v, want one child, told no shard", id, ts)
			}
			finishWith(sessions[id], ts[0], OutcomeSucceeded, `"`+id+`"`)
		}
		got := en.wantStatus(p.ID, store.StatusSucceeded)
		if string(got.Result) != `["w-a","w-b","w-c"]` || got.ShardCount != 3 {
			t.Errorf("parent %d shards, result %s; want one per worker in id order", got.ShardCount, got.Result)
		}
		if n := len(late.Tasks()); n != 0 {
			t.Errorf("the worker that connected later got %d runs", n)
		}

		sb := en.submit(SubmitSpec{Routing: store.RoutingShardBroadcast})[0]
		var shards []int
		for _, id := range []string{"w-a", "w-b", "w-c", "w-d"} {
			c := conns[id]
			if c == nil {
				c = late
			}
			ts := c.Tasks()
			last := ts[len(ts)-1]
			if last.Parent != sb.ID || last.ShardCount != 4 {
				t.Fatalf("%s: %+v, want a shard of 4", id, last)
			}
			shards = append(shards, last.Shard)
		}
		slices.Sort(shards)
		if !slices.Equal(shards, []int{0, 1, 2, 3}) {
			t.Errorf("shards %v", shards)
		}
	})
}

// A broadcast child whose worker died before running it fails rather
// than run on another worker; its parent fails with it.
func TestBroadcastChildOfADeadWorker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		a, _ := en.connect("w-a", 1)
		b, cb := en.connect("w-b", 2)
		busy := en.submit(SubmitSpec{Routing: RoutingFailover})[0] // w-a is busy with it
		p := en.submit(SubmitSpec{Routing: store.RoutingBroadcast})[0]
		if n := len(cb.Tasks()); n != 1 {
			t.Fatalf("w-b got %d runs, want its child", n)
		}
		finishWith(b, cb.Tasks()[0], OutcomeSucceeded, "1")
		a.Close(errors.New("connection reset"))
		time.Sleep(time.Minute) // w-a declared dead: its held run requeued, its child has nowhere to go
		synctest.Wait()
		got := en.wantStatus(p.ID, store.StatusFailed)
		if n := len(cb.Tasks()); n != 2 || cb.Tasks()[1].RunID != busy.ID {
			t.Errorf("w-b's tasks %v, want the requeued run, not w-a's child", ids(cb.Tasks()))
		}
		if !strings.Contains(got.Error, "not connected to this server") {
			t.Errorf("parent's error %q, want the child's worker named as gone", got.Error)
		}
	})
}

func TestSplitValidation(t *testing.T) {
	en := newEnv(t, nil)
	for _, c := range []struct {
		spec  SubmitSpec
		field string
	}{
		{SubmitSpec{Type: "t", Group: "g", Routing: store.RoutingBroadcast, Shards: 2}, "routing"},
		{SubmitSpec{Type: "t", Group: "g", Routing: store.RoutingBroadcast, MinSuccess: 1.5}, "min_success"},
		{SubmitSpec{Type: "t", Group: "g", Routing: store.RoutingBroadcast, MinSuccess: -1}, "min_success"},
	} {
		_, err := en.e.Submit(en.ctx, []SubmitSpec{c.spec})
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("%+v: %v, want a 400 on %s", c.spec, err, c.field)
		}
	}
	for _, c := range []struct {
		job   store.Job
		field string
	}{
		{store.Job{Name: "j", Type: "t", Shards: -1}, "shards"},
		{store.Job{Name: "j", Type: "t", Shards: store.MaxFanout + 1}, "shards"},
		{store.Job{Name: "j", Type: "t", Shards: 2, Routing: store.RoutingShardBroadcast}, "routing"},
		{store.Job{Name: "j", Type: "t", Shards: 2, MinSuccess: 3}, "min_success"},
		{store.Job{Name: "j", Type: "t", MinSuccess: 1}, "min_success"},
		{store.Job{Name: "j", Type: "t", Merge: "m"}, "merge"},
	} {
		_, _, err := en.e.JobPut(en.ctx, c.job)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("%+v: %v, want a 400 on %s", c.job, err, c.field)
		}
	}
}
