package fingerprint

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSameShapeSameFingerprint(t *testing.T) {
	groups := [][]string{
		{
			"dial tcp 10.0.0.7:5432: connect: connection refused",
			"dial tcp 10.0.3.12:6543: connect: connection refused",
		},
		{
			"shell: command failed with exit code 3",
			"shell: command failed with exit code 127",
		},
		{
			"order 18433 not found at 2026-12-03T05:40:52.123Z (request 3f2b8c1e-9a7d-4b7e-8f21-0c1d2e3f4a5b)",
			"order 99 not found at 2025-01-01T00:00:00Z (request 00000000-0000-0000-0000-000000000000)",
		},
		{
			"run r_01M8X6PZ4S8BDGXTBKZ7P9ZAG4 timed out after 30s",
			"run r_01M8X76R8M70YV09XX6GGR6JMF timed out after 1.5m",
		},
		{
			"checksum deadbeefcafebabe0123 mismatch for 'file-a.csv'",
			"checksum 0123456789abcdef9876 mismatch for 'other.csv'",
		},
	}
	seen := map[string]int{}
	for i, g := range groups {
		fp := Of(g[0])
		for _, m := range g[1:] {
			if Of(m) != fp {
				t.Errorf("group %d: %q → %q but %q → %q", i, g[0], Shape(g[0]), m, Shape(m))
			}
		}
		if j, dup := seen[fp]; dup {
			t.Errorf("groups %d and %d share a fingerprint", j, i)
		}
		seen[fp] = i
	}
}

func TestProbeFindsTheMessages(t *testing.T) {
	for _, msg := range []string{
		"dial tcp 10.0.0.7:5432: connect: connection refused",
		"order 18433 not found at 2026-12-03T05:40:52Z",
		"shell: command failed with exit code 3",
	} {
		p := Probe(msg)
		if p == "" || !strings.Contains(msg, p) {
			t.Errorf("Probe(%q) = %q: not a substring", msg, p)
		}
	}
	if got := Probe("dial tcp 10.0.0.7:5432: connect: connection refused"); got != "connect: connection refused" {
		t.Errorf("probe %q", got)
	}
}

func FuzzShape(f *testing.F) {
	f.Add("dial tcp 10.0.0.7:5432: connection refused")
	f.Add("\xff\xfe 123 r_01M8X6PZ4S8BDGXTBKZ7P9ZAG4")
	f.Fuzz(func(t *testing.T, msg string) {
		s := Shape(msg)
		if !utf8.ValidString(s) {
			t.Fatalf("invalid UTF-8 shape of %q", msg)
		}
		if Shape(s) != Shape(Shape(s)) {
			t.Fatalf("shape not stable for %q", msg)
		}
		if len(Of(msg)) != 12 {
			t.Fatalf("fingerprint %q", Of(msg))
		}
		_ = Probe(msg)
	})
}
