package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Mutant is one plausible bug: an exact edit of one file, and the tests
// that should notice it.
type Mutant struct {
	ID   string // short and stable: it names the mutant in -run and in reports
	File string // slash-separated, from the module root
	// Old must occur exactly once in File; New replaces it. Keep Old short
	// and specific, so that it survives unrelated edits of the file (a
	// catalogue entry whose Old no longer occurs once is an error, never
	// skipped).
	Old, New string
	Pkgs     []string      // go test packages, "./internal/cron"
	Run      string        // go test -run; "" runs every test of Pkgs
	Skip     string        // go test -skip; "" skips none
	Timeout  time.Duration // 0: the -timeout flag
	Desc     string        // one line: the bug, as a reviewer would put it
}

// testArgs are the go test arguments of m, without the timeout. Mutants
// with the same arguments share a baseline run.
func (m *Mutant) testArgs() []string {
	args := []string{"test", "-count=1"}
	if m.Run != "" {
		args = append(args, "-run", m.Run)
	}
	if m.Skip != "" {
		args = append(args, "-skip", m.Skip)
	}
	return append(args, m.Pkgs...)
}

var idRE = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// validate checks the catalogue itself (not whether it applies to a tree):
// every field a run needs, unique IDs, a real edit.
func validate(ms []Mutant) error {
	seen := map[string]bool{}
	var errs []error
	for i := range ms {
		m := &ms[i]
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("mutant %d (%q): %s", i, m.ID, fmt.Sprintf(format, args...)))
		}
		switch {
		case !idRE.MatchString(m.ID):
			bad("ID must be lower-case words joined by dashes")
		case seen[m.ID]:
			bad("duplicate ID")
		}
		seen[m.ID] = true
		if m.File == "" || filepath.IsAbs(m.File) || strings.Contains(m.File, "\\") || strings.HasPrefix(filepath.Clean(m.File), "..") {
			bad("File %q must be a slash path inside the module", m.File)
		}
		if m.Old == "" || m.Old == m.New {
			bad("Old must be non-empty and differ from New")
		}
		if len(m.Pkgs) == 0 {
			bad("no packages to test")
		}
		for _, p := range m.Pkgs {
			if !strings.HasPrefix(p, "./") {
				bad("package %q must be a ./ path", p)
			}
		}
		for _, re := range []string{m.Run, m.Skip} {
			if _, err := regexp.Compile(re); err != nil {
				bad("bad test pattern %q: %v", re, err)
			}
		}
		if m.Desc == "" || strings.Contains(m.Desc, "\n") {
			bad("Desc must be one line")
		}
		if m.Timeout < 0 {
			bad("negative timeout")
		}
	}
	return errors.Join(errs...)
}

// errNotApplied reports a mutant whose Old text does not occur exactly
// once in the tree: the catalogue needs updating.
var errNotApplied = errors.New("does not apply")

// mutated returns the content of m's file in the tree at root with the
// edit applied, and the original content.
func mutated(root string, m *Mutant) (mut, orig []byte, err error) {
	orig, err = os.ReadFile(filepath.Join(root, filepath.FromSlash(m.File)))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errNotApplied, err)
	}
	switch n := strings.Count(string(orig), m.Old); n {
	case 1:
	case 0:
		return nil, nil, fmt.Errorf("%w: old text not found in %s", errNotApplied, m.File)
	default:
		return nil, nil, fmt.Errorf("%w: old text found %d times in %s (make it specific)", errNotApplied, n, m.File)
	}
	return []byte(strings.Replace(string(orig), m.Old, m.New, 1)), orig, nil
}

// line is the 1-based line of the first occurrence of text in content.
func line(content []byte, text string) int {
	i := strings.Index(string(content), text)
	if i < 0 {
		return 0
	}
	return 1 + strings.Count(string(content[:i]), "\n")
}
