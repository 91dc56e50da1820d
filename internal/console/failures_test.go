package console

import (
	"net/url"
	"strings"
	"testing"

	"github.com/pluto-sched/pluto/internal/apijson"
)

func TestGroupFailures(t *testing.T) {
	s := func(v string) *string { return &v }
	runs := []apijson.Run{
		{ID: "r1", Error: s("dial tcp 10.0.0.7:5432: connect: connection refused"), Job: s("etl"), FinishedAt: s("2026-12-03T05:00:00Z")},
		{ID: "r2", Error: s("dial tcp 10.0.0.9:5432: connect: connection refused"), Job: s("report"), FinishedAt: s("2026-12-03T06:00:00Z")},
		{ID: "r3", Error: s("shell: command failed with exit code 3"), FinishedAt: s("2026-12-03T05:30:00Z")},
		{ID: "r4", Error: s("dial tcp 10.1.0.1:6432: connect: connection refused"), Job: s("etl"), FinishedAt: s("2026-12-03T04:00:00Z")},
	}
	g := groupFailures(runs, url.Values{"group": {"default"}})
	if len(g) != 2 {
		t.Fatalf("%d groups, want 2: %+v", len(g), g)
	}
	top := g[0]
	if top.Count != 3 || top.First != "2026-12-03T04:00:00Z" || top.Last != "2026-12-03T06:00:00Z" || strings.Join(top.Jobs, ",") != "etl,report" {
		t.Fatalf("top group %+v", top)
	}
	if !strings.Contains(top.Link, "error=connect%3A+connection+refused") || !strings.Contains(top.Link, "group=default") {
		t.Fatalf("link %q", top.Link)
	}
}

func TestSparkline(t *testing.T) {
	if sparkline("x", []float64{1}) != "" {
		t.Fatal("a single point draws nothing")
	}
	s := string(sparkline(`a"b`, []float64{0, 50, 100}))
	if !strings.Contains(s, `points="0.0,17.0 40.0,9.0 80.0,1.0"`) || !strings.Contains(s, `aria-label="a&#34;b"`) {
		t.Fatalf("sparkline %s", s)
	}
}
