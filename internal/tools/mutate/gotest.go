package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"time"
)

// verdict is what one go test run says about the code it tested.
type verdict int

const (
	passed     verdict = iota
	failed             // a test failed: the mutant is killed
	timedOut           // the tests did not end within the timeout
	buildError         // the package or its tests do not compile (or vet fails)
	runError           // go test could not be run at all
)

// testRun is one finished go test.
type testRun struct {
	verdict verdict
	took    time.Duration
	by      string // the test that failed, or why it did not pass
	output  []byte
}

// buildSlack is how long go test may take beyond its own -timeout (which
// counts only the test binaries' run time) before it is killed: compiling
// the mutated package and its dependents.
const buildSlack = 3 * time.Minute

// goTest runs go with args (a test command) in dir. The test binaries get
// -timeout timeout, which makes a hang end as a panic that names it; the
// whole process group is killed if go test is still running buildSlack
// after that, or when ctx ends.
func goTest(parent context.Context, dir string, args []string, timeout time.Duration) testRun {
	ctx, cancel := context.WithTimeout(parent, timeout+buildSlack)
	defer cancel()
	full := append(append([]string{args[0]}, "-timeout", timeout.String()), args[1:]...)
	cmd := exec.CommandContext(ctx, "go", full...)
	cmd.Dir = dir
	cmd.Env = testEnv()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	ownGroup(cmd)
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	err := cmd.Run()
	r := testRun{took: time.Since(start), output: out.Bytes()}
	switch {
	case err == nil:
		r.verdict = passed
	case parent.Err() != nil:
		r.verdict, r.by = runError, "interrupted"
	case ctx.Err() != nil:
		r.verdict, r.by = timedOut, "killed after "+(timeout+buildSlack).String()
	case bytes.Contains(r.output, []byte("panic: test timed out after")):
		r.verdict, r.by = timedOut, "go test -timeout "+timeout.String()
	case buildFailedRE.Match(r.output):
		r.verdict, r.by = buildError, buildErrorLine(r.output)
	case isExit(err):
		r.verdict, r.by = failed, failedTest(r.output)
	default:
		r.verdict, r.by = runError, err.Error()
	}
	return r
}

func isExit(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee)
}

// testEnv is the tests' environment: this process's, with CI=1 so that
// tests that need a service (PostgreSQL) fail instead of skipping when it
// is unreachable — the baseline run then reports it, instead of every
// mutant of those tests surviving.
func testEnv() []string {
	env := os.Environ()
	if os.Getenv("CI") == "" {
		env = append(env, "CI=1")
	}
	return env
}

var (
	compileErrRE  = regexp.MustCompile(`(?m)^\S+\.go:\d+:\d+: .*$`)
	buildFailedRE = regexp.MustCompile(`(?m)^FAIL\s+\S+\s+\[(build|setup) failed\]$`)
	failRE        = regexp.MustCompile(`(?m)^\s*--- FAIL: (\S+)`)
	pkgFailRE     = regexp.MustCompile(`(?m)^FAIL\s+(\S+)\s`)
)

// failedTest names the failing tests in go test's output — the most
// specific ones (a subtest rather than its parent), the first and how many
// more — or the failing package when no test is named (a TestMain, a leak
// check).
func failedTest(out []byte) string {
	var names []string
	for _, m := range failRE.FindAllSubmatch(out, -1) {
		names = append(names, string(m[1]))
	}
	var leaves []string
	for _, n := range names {
		leaf := true
		for _, o := range names {
			if strings.HasPrefix(o, n+"/") {
				leaf = false
				break
			}
		}
		if leaf && !slices.Contains(leaves, n) {
			leaves = append(leaves, n)
		}
	}
	switch {
	case len(leaves) == 1:
		return leaves[0]
	case len(leaves) > 1:
		return fmt.Sprintf("%s (+%d more)", leaves[0], len(leaves)-1)
	}
	if m := pkgFailRE.FindSubmatch(out); m != nil {
		return "FAIL " + string(m[1])
	}
	return "go test failed"
}

// buildErrorLine is the first compiler (or vet) error in go test's
// output, or its "build failed" line.
func buildErrorLine(out []byte) string {
	if m := compileErrRE.Find(out); m != nil {
		return string(m)
	}
	return firstLine(buildFailedRE.Find(out))
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(s)
}
