package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime/metrics"
	"strings"
	"sync"
	"time"

	"github.com/pluto-sched/pluto/client"
	"github.com/pluto-sched/pluto/worker"
)

// Fan-out mode: one parent of Shards no-op children at a time, timed from
// the submit to the parent's merged result (the client's Wait returns it).
// Each size runs twice — joined (the parent's result is the children's
// results in shard order) and merged (a merge run gets them and answers
// their count) — after a small warm-up fan-out. The server's live heap is
// read before and after each parent, and its peak sampled during it: the
// children are rows in the store, and only those claimed (at most the
// workers' windows) are in the server's memory.

// FanoutReport is --mode fanout's outcome.
type FanoutReport struct {
	Rows []FanoutRow `json:"rows"`
}

// FanoutRow is one parent.
type FanoutRow struct {
	Shards  int     `json:"shards"`
	Merge   bool    `json:"merge"`
	Seconds float64 `json:"seconds"` // submit → the parent's result
	// ChildrenPerSecond is Shards / Seconds.
	ChildrenPerSecond float64 `json:"children_per_s"`
	// HeapBefore and HeapAfter are the live heap (after a GC) before the
	// submit and after the result; HeapPeak the highest heap in use
	// sampled every 10 ms meanwhile (garbage included).
	HeapBefore uint64 `json:"heap_before_bytes"`
	HeapAfter  uint64 `json:"heap_after_bytes"`
	HeapPeak   uint64 `json:"heap_peak_bytes"`
	Result     string `json:"result"` // what the parent's result held
}

const fanoutMergeType = "count"

func runFanout(ctx context.Context, opts Options, storeURL string) (*Report, error) {
	srv, err := startServer(ctx, opts, storeURL, nil)
	if err != nil {
		return nil, err
	}
	defer srv.Stop(context.Background())
	cl, err := srv.dial(opts)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var ws workers
	mux := worker.NewMux()
	mux.HandleFunc("noop", func(context.Context, *worker.Run) error { return nil })
	mux.HandleFunc(fanoutMergeType, countResults)
	if err := ws.startTypes(ctx, srv, opts, mux, []string{"noop", fanoutMergeType}); err != nil {
		ws.stop()
		return nil, err
	}
	defer ws.stop()

	rep := newReport(opts, srv.Server)
	rep.Runs = 0
	fr := &FanoutReport{}
	rep.Fanout = fr
	if _, err := fanoutOnce(ctx, cl, 10, false); err != nil { // warm-up
		return nil, err
	}
	start := time.Now()
	for _, merge := range []bool{false, true} {
		row, err := fanoutOnce(ctx, cl, opts.Shards, merge)
		if err != nil {
			return nil, err
		}
		fr.Rows = append(fr.Rows, row)
		rep.Runs += opts.Shards
	}
	rep.ElapsedSeconds = time.Since(start).Seconds()
	return rep, nil
}

// fanoutOnce submits one parent of n no-op children and waits for it.
func fanoutOnce(ctx context.Context, cl *client.Client, n int, merge bool) (FanoutRow, error) {
	row := FanoutRow{Shards: n, Merge: merge}
	row.HeapBefore = memSnapshot().HeapLiveBytes
	spec := client.RunSpec{Type: "noop", Group: "bench", Shards: n}
	if merge {
		spec.Merge = fanoutMergeType
	}
	peak := sampleHeap()
	start := time.Now()
	run, err := cl.Submit(ctx, spec)
	if err != nil {
		peak()
		return row, err
	}
	r, err := cl.Wait(ctx, run.ID)
	row.Seconds = time.Since(start).Seconds()
	row.HeapPeak = peak()
	if err != nil {
		return row, err
	}
	if r.Status != client.StatusSucceeded {
		return row, fmt.Errorf("bench: fan-out parent %s: %s: %s", r.ID, r.Status, r.Error)
	}
	row.ChildrenPerSecond = float64(n) / row.Seconds
	row.HeapAfter = memSnapshot().HeapLiveBytes
	row.Result = describeResult(r.Result, n, merge)
	return row, nil
}

// describeResult checks the parent's result: n entries (joined) or the
// merge's count of n.
func describeResult(res json.RawMessage, n int, merge bool) string {
	if merge {
		var count int
		if json.Unmarshal(res, &count) != nil || count != n {
			return fmt.Sprintf("WRONG: merge answered %.40s, want %d", res, n)
		}
		return fmt.Sprintf("merge counted %d results", count)
	}
	var list []json.RawMessage
	if json.Unmarshal(res, &list) != nil || len(list) != n {
		return fmt.Sprintf("WRONG: %d entries, want %d", len(list), n)
	}
	return fmt.Sprintf("%d results in shard order", len(list))
}

// countResults is the merge handler: it answers how many results it got.
func countResults(_ context.Context, r *worker.Run) error {
	var in struct {
		Results []json.RawMessage `json:"results"`
	}
	if err := json.Unmarshal(r.Payload(), &in); err != nil {
		return err
	}
	return r.SetResult(len(in.Results))
}

// sampleHeap samples the heap in use every 10 ms until the returned
// function is called, which returns the highest sample.
func sampleHeap() func() uint64 {
	var (
		mu   sync.Mutex
		high uint64
	)
	stop, done := make(chan struct{}), make(chan struct{})
	read := func() {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		metrics.Read(s)
		if s[0].Value.Kind() == metrics.KindUint64 {
			mu.Lock()
			high = max(high, s[0].Value.Uint64())
			mu.Unlock()
		}
	}
	go func() {
		defer close(done)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			read()
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(stop)
		<-done
		mu.Lock()
		defer mu.Unlock()
		return high
	}
}

func (r *Report) fanoutText() string {
	var b strings.Builder
	fmt.Fprintf(&b, "pluto bench: fanout, no-op children, store %s, %d workers × capacity %d (+%d prefetch)%s\n",
		r.Store, r.Workers, r.Capacity, r.Prefetch, tlsNote(r.TLS))
	r.header(&b)
	fmt.Fprintf(&b, "%8s  %-6s  %9s  %12s  %11s  %11s  %11s  %s\n", "SHARDS", "MERGE", "SECONDS", "CHILDREN/S", "HEAP BEFORE", "HEAP AFTER", "HEAP PEAK", "RESULT")
	for _, row := range r.Fanout.Rows {
		fmt.Fprintf(&b, "%8d  %-6v  %9.3f  %12.0f  %9.1f M  %9.1f M  %9.1f M  %s\n", row.Shards, row.Merge, row.Seconds, row.ChildrenPerSecond,
			mib(int64(row.HeapBefore)), mib(int64(row.HeapAfter)), mib(int64(row.HeapPeak)), row.Result)
	}
	return b.String()
}
