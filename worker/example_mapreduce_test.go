package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/pluto-sched/pluto/worker"
)

// Map-reduce from inside a handler: a "wordcount" run maps one child per
// file, each child counts its file, and a merge run of the same type adds
// the counts up. One handler serves all three; the run says which it is.
func ExampleRun_Map() {
	words := map[string]int{"a.txt": 120, "b.txt": 80, "c.txt": 7} // stands in for reading the files

	wordcount := worker.HandlerFunc(func(ctx context.Context, r *worker.Run) error {
		switch {
		case r.IsMerge(): // reduce: one result per child, in part order
			var counts []int
			if err := r.MergeResults(&counts); err != nil {
				return err
			}
			total := 0
			for _, n := range counts {
				total += n
			}
			return r.SetResult(total)
		case r.ParentID() != "": // a child: one file
			var p struct {
				File string `json:"file"`
			}
			if err := r.Decode(&p); err != nil {
				return err
			}
			return r.SetResult(words[p.File])
		default: // map: one child per file; the run ends when the merge has
			var p struct {
				Files []string `json:"files"`
			}
			if err := r.Decode(&p); err != nil {
				return err
			}
			parts := make([]worker.Part, len(p.Files))
			for i, f := range p.Files {
				parts[i] = map[string]string{"file": f}
			}
			res, err := r.Map(ctx, parts, worker.MapOptions{Merge: "wordcount"})
			if err != nil {
				return err
			}
			r.Logger().Info("mapped", "children", res.Children, "existing", res.Existing)
			return nil
		}
	})

	ctx := context.Background()
	parent := worker.NewTestRun(worker.TestRun{
		Type:    "wordcount",
		Payload: json.RawMessage(`{"files": ["a.txt", "b.txt", "c.txt"]}`),
		Log:     os.Stdout,
		Map: func(parts []json.RawMessage, opt worker.MapOptions) (worker.MapResult, error) {
			fmt.Printf("map %d parts, merge %q\n", len(parts), opt.Merge)
			return worker.MapResult{Children: len(parts)}, nil
		},
	})
	fmt.Println("map:", wordcount.ProcessRun(ctx, parent))

	child := worker.NewTestRun(worker.TestRun{
		Type: "wordcount", ParentID: "run-test", Shard: 1, ShardCount: 3,
		Payload: json.RawMessage(`{"file": "b.txt"}`),
	})
	fmt.Println("child:", wordcount.ProcessRun(ctx, child), string(child.Result()))

	merge := worker.NewTestRun(worker.TestRun{
		Type: "wordcount", Merge: true,
		Payload: json.RawMessage(`{"parent": "run-test", "results": [120, 80, 7]}`),
	})
	fmt.Println("merge:", wordcount.ProcessRun(ctx, merge), string(merge.Result()))
	// Output:
	// map 3 parts, merge "wordcount"
	// log info: mapped children=3 existing=false
	// map: <nil>
	// child: <nil> 80
	// merge: <nil> 207
}
