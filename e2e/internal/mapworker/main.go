// Command mapworker is a worker for the map-reduce end-to-end tests: its
// handler of type "sum" maps a run into children (one per number up to
// the payload's n), each child returns its number, and the merge run sums
// them. Every child appends its run ID to the exec log, so a test can
// count executions; with --die-after-map the process kills itself with
// SIGKILL right after its first attempt's Map was answered.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"syscall"

	"github.com/pluto-sched/pluto/worker"
)

func main() {
	server := flag.String("server", "", "the server's gRPC address")
	id := flag.String("id", "", "the worker's id")
	execLog := flag.String("exec-log", "", "file each child appends its run ID to")
	die := flag.Bool("die-after-map", false, "SIGKILL this process after the first attempt's Map")
	flag.Parse()

	h := worker.HandlerFunc(func(ctx context.Context, r *worker.Run) error {
		if r.IsMerge() {
			var nums []int
			if err := r.MergeResults(&nums); err != nil {
				return err
			}
			sum := 0
			for _, n := range nums {
				sum += n
			}
			return r.SetResult(sum)
		}
		if _, count := r.Shard(); count > 0 {
			var p struct{ I int }
			if err := r.Decode(&p); err != nil {
				return err
			}
			if err := appendLine(*execLog, r.ID()); err != nil {
				return err
			}
			return r.SetResult(p.I)
		}
		var p struct{ N int }
		if err := r.Decode(&p); err != nil {
			return err
		}
		parts := make([]worker.Part, p.N)
		for i := range parts {
			parts[i] = map[string]int{"i": i + 1}
		}
		res, err := r.Map(ctx, parts, worker.MapOptions{Merge: "sum"})
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "mapped run=%s attempt=%d children=%d existing=%v\n", r.ID(), r.Attempt(), res.Children, res.Existing)
		if *die && r.Attempt() == 1 {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
		return nil
	})
	w, err := worker.New(worker.Options{Servers: []string{*server}, ID: *id, Capacity: 8, Handler: h, Types: []string{"sum"},
		Token: os.Getenv("PLUTO_TOKEN"), Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		log.Fatal(err)
	}
	if err := w.RunWithSignals(context.Background()); err != nil {
		log.Fatal(err)
	}
}

func appendLine(path, line string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(f, line)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
