package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCatalogue(t *testing.T) {
	if err := validate(catalogue); err != nil {
		t.Fatal(err)
	}
	if len(catalogue) < 30 {
		t.Errorf("%d mutants, want at least 30", len(catalogue))
	}
	ids := map[string]bool{}
	for _, m := range catalogue {
		ids[m.ID] = true
	}
	// The mutants the catalogue was asked for by name.
	for _, id := range []string{"pg-claim-recheck", "engine-ready-priority", "engine-backoff-jitter", "engine-cancel-dispatched",
		"engine-lease-rearm", "worker-persist-wake", "sqlite-finish-attempt", "pg-slot-unique", "sqlite-slot-unique"} {
		if !ids[id] {
			t.Errorf("mutant %s missing", id)
		}
	}
}

func TestValidateRejects(t *testing.T) {
	ok := Mutant{ID: "a-b", File: "x/y.go", Old: "a", New: "b", Pkgs: []string{"./x"}, Desc: "d"}
	for name, edit := range map[string]func(m *Mutant){
		"bad ID":        func(m *Mutant) { m.ID = "A B" },
		"absolute file": func(m *Mutant) { m.File = "/x/y.go" },
		"outside":       func(m *Mutant) { m.File = "../y.go" },
		"no edit":       func(m *Mutant) { m.New = m.Old },
		"empty old":     func(m *Mutant) { m.Old = "" },
		"no packages":   func(m *Mutant) { m.Pkgs = nil },
		"bad package":   func(m *Mutant) { m.Pkgs = []string{"x"} },
		"bad run":       func(m *Mutant) { m.Run = "(" },
		"two lines":     func(m *Mutant) { m.Desc = "a\nb" },
	} {
		m := ok
		edit(&m)
		if validate([]Mutant{m}) == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := validate([]Mutant{ok}); err != nil {
		t.Errorf("valid mutant rejected: %v", err)
	}
	if validate([]Mutant{ok, ok}) == nil {
		t.Error("duplicate IDs accepted")
	}
}

func TestMutated(t *testing.T) {
	root := t.TempDir()
	write(t, root, "f.go", "one two two")
	for _, c := range []struct {
		old, want string
		err       string
	}{
		{"one", "ONE two two", ""},
		{"two", "", "found 2 times"},
		{"three", "", "not found"},
	} {
		m := &Mutant{ID: "m", File: "f.go", Old: c.old, New: strings.ToUpper(c.old)}
		mut, orig, err := mutated(root, m)
		switch {
		case c.err != "" && (!errors.Is(err, errNotApplied) || !strings.Contains(err.Error(), c.err)):
			t.Errorf("old %q: error %v, want %q", c.old, err, c.err)
		case c.err == "" && (err != nil || string(mut) != c.want || string(orig) != "one two two"):
			t.Errorf("old %q: %q, %q, %v", c.old, mut, orig, err)
		}
	}
	if _, _, err := mutated(root, &Mutant{File: "missing.go", Old: "x"}); !errors.Is(err, errNotApplied) {
		t.Errorf("missing file: %v", err)
	}
}

func TestCopyTree(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	for _, f := range []string{"go.mod", "a/b.go", ".git/HEAD", "pluto", "bin/x", "a/x.test", "pluto-data/db", "a/pluto"} {
		write(t, src, f, f)
	}
	if err := os.Symlink("b.go", filepath.Join(src, "a", "link.go")); err != nil {
		t.Fatal(err)
	}
	if err := copyTree(src, dst); err != nil {
		t.Fatal(err)
	}
	for f, want := range map[string]bool{"go.mod": true, "a/b.go": true, "a/pluto": true, ".git/HEAD": false, "pluto": false,
		"bin/x": false, "a/x.test": false, "pluto-data/db": false} {
		_, err := os.Stat(filepath.Join(dst, f))
		if got := err == nil; got != want {
			t.Errorf("%s copied: %v, want %v", f, got, want)
		}
	}
	if l, err := os.Readlink(filepath.Join(dst, "a", "link.go")); err != nil || l != "b.go" {
		t.Errorf("symlink: %q, %v", l, err)
	}
}

func TestFailedTest(t *testing.T) {
	out := "--- FAIL: TestA (0.1s)\n    --- FAIL: TestA/sub (0.0s)\n        x_test.go:3: boom\nFAIL\nFAIL\texample.com/m\t0.2s\n"
	if got := failedTest([]byte(out)); got != "TestA/sub" {
		t.Errorf("got %q", got)
	}
	out += "--- FAIL: TestB (0.1s)\n--- FAIL: TestC (0.1s)\n    --- FAIL: TestC/x (0.0s)\n    --- FAIL: TestC/y (0.0s)\n"
	if got := failedTest([]byte(out)); got != "TestA/sub (+3 more)" {
		t.Errorf("got %q", got)
	}
	if got := failedTest([]byte("goleak: found leaks\nFAIL\texample.com/m\t0.2s\n")); got != "FAIL example.com/m" {
		t.Errorf("got %q", got)
	}
}

func TestReport(t *testing.T) {
	m := &Mutant{ID: "m", Desc: "d"}
	rs := func(os ...outcome) []result {
		var out []result
		for _, o := range os {
			out = append(out, result{m: m, outcome: o})
		}
		return out
	}
	for _, c := range []struct {
		rs   []result
		min  float64
		code int
		rate string
	}{
		{rs(killed, timeout, survived, survived), 0, 0, "kill rate 50.0% (2/4)"},
		{rs(killed, timeout, survived, survived), 60, 1, "kill rate 50.0%"},
		{rs(killed, killed, killed, survived), 75, 0, "kill rate 75.0% (3/4)"},
		{rs(killed, notApplied), 0, 2, "errors 1"},
		{rs(notApplied), 50, 2, "kill rate 0.0% (0/0)"},
	} {
		var b bytes.Buffer
		if code := report(&b, c.rs, c.min); code != c.code || !strings.Contains(b.String(), c.rate) {
			t.Errorf("%v min %v: exit %d, want %d; output:\n%s", c.rs, c.min, code, c.code, b.String())
		}
	}
}

// TestRunAll runs mutants of a small module through the whole cycle: one
// killed, one that survives, one that hangs, one that does not compile,
// one that no longer applies. The module itself is left as it was.
func TestRunAll(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs go test on a scratch module")
	}
	root := t.TempDir()
	write(t, root, "go.mod", "module example.com/m\n\ngo 1.22\n")
	src := "package m\n\nfunc Add(a, b int) int { return a + b }\n\nfunc Loop(n int) int {\n\tfor i := 0; i < n; i++ {\n\t}\n\treturn n\n}\n"
	write(t, root, "m.go", src)
	write(t, root, "m_test.go", "package m\n\nimport \"testing\"\n\nfunc TestAdd(t *testing.T) {\n\tif Add(2, 2) != 4 {\n\t\tt.Fatal(\"2+2\")\n\t}\n\tLoop(3)\n}\n")
	pkgs := []string{"./"}
	ms := []Mutant{
		{ID: "killed", File: "m.go", Old: "a + b", New: "a - b", Pkgs: pkgs, Desc: "d"},
		{ID: "survived", File: "m.go", Old: "return n", New: "return n + 0", Pkgs: pkgs, Desc: "d"},
		{ID: "hangs", File: "m.go", Old: "i < n; i++", New: "i < n; i *= 1", Pkgs: pkgs, Desc: "d"},
		{ID: "no-build", File: "m.go", Old: "return a + b", New: "return a + ", Pkgs: pkgs, Desc: "d"},
		{ID: "gone", File: "m.go", Old: "a * b", New: "a / b", Pkgs: pkgs, Desc: "d"},
	}
	opts := options{timeout: 3 * time.Second, baseline: true}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var log bytes.Buffer
	results, err := runAll(ctx, root, ms, opts, &log)
	if err != nil {
		t.Fatalf("runAll: %v\n%s", err, log.String())
	}
	t.Log(log.String())
	want := map[string]outcome{"killed": killed, "survived": survived, "hangs": timeout, "no-build": badBuild, "gone": notApplied}
	for _, r := range results {
		if r.outcome != want[r.m.ID] {
			t.Errorf("%s: %s (%s), want %s\n%s", r.m.ID, r.outcome, r.detail, want[r.m.ID], tail(r.output, 20))
		}
	}
	if r := results[0]; r.detail != "TestAdd" {
		t.Errorf("killed by %q, want TestAdd", r.detail)
	}
	if r := results[3]; !strings.Contains(r.detail, "m.go:3:") {
		t.Errorf("build error detail %q, want the compiler's message", r.detail)
	}
	if b, err := os.ReadFile(filepath.Join(root, "m.go")); err != nil || string(b) != src {
		t.Errorf("the module was changed: %q, %v", b, err)
	}
	if !strings.Contains(log.String(), "baseline ./: ok") {
		t.Errorf("no baseline in the log:\n%s", log.String())
	}
}

func write(t *testing.T, root, rel, content string) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
