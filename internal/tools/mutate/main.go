// Command mutate measures how many plausible bugs the tests catch.
//
// It holds a catalogue of mutants (catalogue_*.go): each one an exact edit
// of one source file that a reviewer could miss — a dropped condition, an
// off-by-one, a missing wake-up — and the go test packages that should
// notice it. For each mutant it checks that the edit applies (its old text
// occurs exactly once), applies it to a private copy of the module (the
// working tree is never touched, so others may edit it meanwhile), runs
// the tests and records the result:
//
//	killed    the tests failed
//	timeout   the tests hung and were stopped by the timeout (counted as killed)
//	survived  the tests passed: a bug they would let through
//
// and, as errors that say the catalogue needs care: "does not apply" (the
// old text is gone or ambiguous), "build error" (the edit does not
// compile) and "baseline failed" (the tests fail without any mutant).
//
// Usage:
//
//	go run ./internal/tools/mutate               # every mutant
//	go run ./internal/tools/mutate -run '^pg-'   # mutants whose ID matches
//	go run ./internal/tools/mutate -list         # the catalogue, and whether each applies
//	go run ./internal/tools/mutate -min 80       # exit 1 if under 80% are killed
//
// The kill rate is (killed + timeout) / (killed + timeout + survived).
// Exit status: 0, or 1 when the kill rate is under -min, or 2 when a
// mutant ended in an error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// catalogue is every mutant, store mutants first.
var catalogue = append(append([]Mutant{}, storeMutants...), otherMutants...)

type options struct {
	run      *regexp.Regexp
	list     bool
	min      float64
	timeout  time.Duration
	baseline bool
	keep     bool
	verbose  bool
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	opts, err := parseFlags(args, stderr)
	if err != nil {
		return 2
	}
	if err := validate(catalogue); err != nil {
		fmt.Fprintf(stderr, "mutate: the catalogue is invalid:\n%v\n", err)
		return 2
	}
	var selected []Mutant
	for _, m := range catalogue {
		if opts.run.MatchString(m.ID) {
			selected = append(selected, m)
		}
	}
	if len(selected) == 0 {
		fmt.Fprintf(stderr, "mutate: no mutant ID matches %q\n", opts.run)
		return 2
	}
	root, err := moduleRoot(".")
	if err != nil {
		fmt.Fprintf(stderr, "mutate: %v\n", err)
		return 2
	}
	if opts.list {
		return list(stdout, root, selected)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	results, err := runAll(ctx, root, selected, opts, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "mutate: %v\n", err)
		return 2
	}
	return report(stdout, results, opts.min)
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("mutate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	runRE := fs.String("run", "", "run only the mutants whose ID matches this regular expression")
	var o options
	fs.BoolVar(&o.list, "list", false, "list the mutants and whether each applies to this tree; run nothing")
	fs.Float64Var(&o.min, "min", 0, "exit 1 if the kill rate (percent) is below this; 0 only reports")
	fs.DurationVar(&o.timeout, "timeout", 4*time.Minute, "per-mutant test timeout, unless the mutant sets its own (a hang past it is reported as timeout)")
	fs.BoolVar(&o.baseline, "baseline", true, "first run each mutant's tests without the mutant; mutants whose tests fail then are errors")
	fs.BoolVar(&o.keep, "keep", false, "keep the copy of the module (its path is printed)")
	fs.BoolVar(&o.verbose, "v", false, "print the end of each mutant's test output")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mutate: unexpected arguments %q\n", fs.Args())
		return o, errors.New("usage")
	}
	re, err := regexp.Compile(*runRE)
	if err != nil {
		fmt.Fprintf(stderr, "mutate: -run: %v\n", err)
		return o, err
	}
	o.run = re
	if o.timeout <= 0 || o.min < 0 || o.min > 100 {
		fmt.Fprintln(stderr, "mutate: -timeout must be positive and -min within 0..100")
		return o, errors.New("usage")
	}
	return o, nil
}

// list prints the selected mutants and whether each applies to the tree
// at root; it returns 2 if one does not.
func list(w io.Writer, root string, ms []Mutant) int {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tAPPLIES\tWHERE\tTESTS\tDESCRIPTION")
	code := 0
	for i := range ms {
		m := &ms[i]
		applies, where := "yes", m.File
		if _, orig, err := mutated(root, m); err != nil {
			applies, code = "NO: "+strings.TrimPrefix(err.Error(), errNotApplied.Error()+": "), 2
		} else {
			where = fmt.Sprintf("%s:%d", m.File, line(orig, m.Old))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.ID, applies, where, testsOf(m), m.Desc)
	}
	tw.Flush()
	return code
}

// testsOf describes a mutant's tests in one short field.
func testsOf(m *Mutant) string {
	s := strings.Join(m.Pkgs, ",")
	if m.Run != "" {
		s += " -run " + m.Run
	}
	if m.Skip != "" {
		s += " -skip " + m.Skip
	}
	return s
}

// copyModule copies the module at root into a new temporary directory;
// cleanup removes it (unless keep).
func copyModule(root string, keep bool, log io.Writer) (dir string, cleanup func(), err error) {
	tmp, err := os.MkdirTemp("", "mutate-")
	if err != nil {
		return "", nil, err
	}
	dir = filepath.Join(tmp, filepath.Base(root))
	cleanup = func() {
		if keep {
			fmt.Fprintf(log, "mutate: kept the copy in %s\n", dir)
			return
		}
		os.RemoveAll(tmp)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		cleanup()
		return "", nil, err
	}
	if err := copyTree(root, dir); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("copying %s: %w", root, err)
	}
	return dir, cleanup, nil
}
