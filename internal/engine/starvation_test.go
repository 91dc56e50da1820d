package engine

import (
	"container/heap"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

// Runs that only a busy worker serves must not hold up runs of another
// type that an idle worker of the same group serves, whatever their
// priorities.
func TestBusyTypeDoesNotStarveAnotherType(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		sa, ca := en.connect("wa", 1, "a")
		_, cb := en.connect("wb", 2, "b")
		var high []SubmitSpec
		for range 30 {
			high = append(high, SubmitSpec{Type: "a", Priority: 10})
		}
		en.submit(high...)
		ack(sa, ca.Tasks()...) // wa is busy with one of them
		low := en.submit(SubmitSpec{Type: "b", Priority: 0})[0]
		if ts := cb.Tasks(); len(ts) != 1 || ts[0].RunID != low.ID {
			t.Fatalf("the idle worker of type b got %v, want the b run %s", ids(ts), low.ID)
		}
	})
}

// Both workers free when the high-priority runs arrive: a claim sized
// from everyone's credits and ranked across types would take only a-runs,
// parking those the b-worker cannot run.
func TestClaimIsSizedPerKindOfWorker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		_, ca := en.connect("wa", 1, "a")
		_, cb := en.connect("wb", 2, "b")
		var specs []SubmitSpec
		for range 30 {
			specs = append(specs, SubmitSpec{Type: "a", Priority: 10})
		}
		specs = append(specs, SubmitSpec{Type: "b"}, SubmitSpec{Type: "b"})
		runs := en.submit(specs...)
		if n := len(ca.Tasks()); n != 1 {
			t.Fatalf("the a-worker got %d runs, want 1", n)
		}
		if ts := cb.Tasks(); len(ts) != 2 || ts[0].RunID != runs[30].ID || ts[1].RunID != runs[31].ID {
			t.Fatalf("the b-worker got %v, want both b runs", ids(ts))
		}
	})
}

// With a window above one, a claim brings several runs at once and the
// ready queue decides who goes first: higher priority, then earlier
// run_at, then submission order.
func TestPriorityOrderWithAWideWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		runs := en.submit(SubmitSpec{Priority: 0}, SubmitSpec{Priority: 5}, SubmitSpec{Priority: 5}, SubmitSpec{Priority: -1}, SubmitSpec{Priority: 9})
		_, c := en.connect("w1", 8)
		want := []string{runs[4].ID, runs[1].ID, runs[2].ID, runs[0].ID, runs[3].ID}
		if got := ids(c.Tasks()); !slices.Equal(got, want) {
			t.Fatalf("dispatch order %v, want %v", got, want)
		}
	})
}

func TestReadyQueueOrder(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	in := []*flight{
		{id: "late-high", priority: 5, runAt: t0.Add(time.Second), seq: 1},
		{id: "low", priority: -1, runAt: t0, seq: 2},
		{id: "early-high-2", priority: 5, runAt: t0, seq: 4},
		{id: "early-high-1", priority: 5, runAt: t0, seq: 3},
		{id: "mid", priority: 0, runAt: t0, seq: 5},
	}
	var q readyQueue
	for _, f := range in {
		heap.Push(&q, f)
	}
	var got []string
	for q.Len() > 0 {
		got = append(got, heap.Pop(&q).(*flight).id)
	}
	want := []string{"early-high-1", "early-high-2", "late-high", "mid", "low"}
	if !slices.Equal(got, want) {
		t.Fatalf("pop order %v, want %v", got, want)
	}
}

// A claim for one kind of worker that comes back short says nothing of
// the types only busy workers serve: when one of those frees a slot, its
// queued runs are claimed at once.
func TestShortClaimForOneKindKeepsTheOthersClaimable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		sa, ca := en.connect("wa", 1, "a")
		runs := en.submit(SubmitSpec{Type: "a"}, SubmitSpec{Type: "a"})
		en.connect("wb", 1, "b") // its claim (type b only) comes back empty
		finish(sa, OutcomeSucceeded, ca.Tasks()[0])
		if ts := ca.Tasks(); len(ts) != 2 || ts[1].RunID != runs[1].ID {
			t.Fatalf("after its slot freed the a-worker got %v, want the second a run", ids(ts))
		}
	})
}
