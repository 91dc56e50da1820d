package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
)

// outcome is what became of one mutant.
type outcome string

const (
	killed         outcome = "killed"
	timeout        outcome = "timeout"
	survived       outcome = "survived"
	notApplied     outcome = "does not apply"
	badBuild       outcome = "build error"
	baselineFailed outcome = "baseline failed"
	notRun         outcome = "error"
)

// isError says whether an outcome is a problem of the catalogue or of the
// environment rather than a verdict on the tests.
func (o outcome) isError() bool { return o != killed && o != timeout && o != survived }

type result struct {
	m       *Mutant
	outcome outcome
	took    time.Duration
	detail  string // the test that killed it, or what went wrong
	output  []byte
}

// runAll copies the module at root, runs the baselines, then each mutant
// in turn. If ctx ends (an interrupt), the run in progress is killed and
// the mutants not yet run are reported as interrupted.
func runAll(ctx context.Context, root string, ms []Mutant, opts options, log io.Writer) ([]result, error) {
	results := make([]result, len(ms))
	applicable := 0
	for i := range ms {
		results[i].m = &ms[i]
		if _, _, err := mutated(root, &ms[i]); err != nil {
			results[i].outcome, results[i].detail = notApplied, err.Error()
			continue
		}
		applicable++
	}
	if applicable == 0 {
		return results, nil
	}
	dir, cleanup, err := copyModule(root, opts.keep, log)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	fmt.Fprintf(log, "mutate: %d mutants (%d apply), copy of %s in %s\n", len(ms), applicable, root, dir)

	baselines := map[string]testRun{}
	if opts.baseline {
		baselines = runBaselines(ctx, dir, results, opts, log)
	}
	for i := range results {
		r := &results[i]
		if r.outcome != "" {
			continue
		}
		if ctx.Err() != nil {
			r.outcome, r.detail = notRun, "interrupted"
			continue
		}
		if b, ok := baselines[key(r.m)]; ok && b.verdict != passed {
			r.outcome, r.detail, r.output = baselineFailed, b.by, b.output
		} else if err := runOne(ctx, dir, r, opts); err != nil {
			return results, err
		}
		fmt.Fprintf(log, "mutate: [%d/%d] %-28s %-15s %6s  %s\n", i+1, len(results), r.m.ID, r.outcome, r.took.Round(100*time.Millisecond), r.detail)
		if opts.verbose {
			fmt.Fprintf(log, "%s\n", tail(r.output, 40))
		}
	}
	return results, nil
}

func key(m *Mutant) string { return strings.Join(m.testArgs(), " ") }

func timeoutOf(m *Mutant, opts options) time.Duration {
	if m.Timeout > 0 {
		return m.Timeout
	}
	return opts.timeout
}

// runBaselines runs each distinct test command of the applicable mutants
// on the unmutated copy, once.
func runBaselines(ctx context.Context, dir string, results []result, opts options, log io.Writer) map[string]testRun {
	out := map[string]testRun{}
	for _, r := range results {
		k := key(r.m)
		if _, done := out[k]; done || r.outcome != "" || ctx.Err() != nil {
			continue
		}
		b := goTest(ctx, dir, r.m.testArgs(), timeoutOf(r.m, opts))
		out[k] = b
		status := "ok"
		if b.verdict != passed {
			status = "FAILED: " + b.by
		}
		fmt.Fprintf(log, "mutate: baseline %s: %s (%s)\n", testsOf(r.m), status, b.took.Round(100*time.Millisecond))
	}
	return out
}

// runOne applies r's mutant in the copy at dir, runs its tests and puts
// the file back. An error means the copy can no longer be trusted.
func runOne(ctx context.Context, dir string, r *result, opts options) (err error) {
	m := r.m
	mut, orig, err := mutated(dir, m)
	if err != nil {
		r.outcome, r.detail = notApplied, err.Error()
		return nil
	}
	path := filepath.Join(dir, filepath.FromSlash(m.File))
	if err := os.WriteFile(path, mut, 0o644); err != nil {
		return fmt.Errorf("applying %s: %w", m.ID, err)
	}
	defer func() {
		if rerr := os.WriteFile(path, orig, 0o644); rerr != nil {
			err = errors.Join(err, fmt.Errorf("restoring %s after %s: %w", m.File, m.ID, rerr))
		}
	}()
	t := goTest(ctx, dir, m.testArgs(), timeoutOf(m, opts))
	r.took, r.output, r.detail = t.took, t.output, t.by
	switch t.verdict {
	case failed:
		r.outcome = killed
	case timedOut:
		r.outcome = timeout
	case passed:
		r.outcome, r.detail = survived, ""
	case buildError:
		r.outcome = badBuild
	default:
		r.outcome = notRun
	}
	return nil
}

// report prints the results and the kill rate and returns the exit status.
func report(w io.Writer, results []result, min float64) int {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tRESULT\tTIME\tKILLED BY / DETAIL\tDESCRIPTION")
	counts := map[outcome]int{}
	for _, r := range results {
		counts[r.outcome]++
		took := "-"
		if r.took > 0 {
			took = r.took.Round(100 * time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.m.ID, r.outcome, took, oneLine(r.detail), r.m.Desc)
	}
	tw.Flush()
	errs := 0
	for o, n := range counts {
		if o.isError() {
			errs += n
		}
	}
	detected := counts[killed] + counts[timeout]
	judged := detected + counts[survived]
	rate := 0.0
	if judged > 0 {
		rate = 100 * float64(detected) / float64(judged)
	}
	fmt.Fprintf(w, "\nkilled %d (of which timeout %d), survived %d, errors %d: kill rate %.1f%% (%d/%d)\n",
		detected, counts[timeout], counts[survived], errs, rate, detected, judged)
	for _, r := range results {
		if r.outcome == survived {
			fmt.Fprintf(w, "survived: %s (%s) — %s\n", r.m.ID, r.m.File, r.m.Desc)
		}
	}
	switch {
	case errs > 0:
		fmt.Fprintf(w, "%d mutants ended in an error (does not apply, build error, baseline failed, or interrupted: see above)\n", errs)
		return 2
	case min > 0 && (judged == 0 || rate < min):
		fmt.Fprintf(w, "kill rate %.1f%% is below -min %.1f%%\n", rate, min)
		return 1
	}
	return 0
}

// tail is the last n lines of out.
func tail(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func oneLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 90 {
		s = s[:87] + "..."
	}
	return s
}
