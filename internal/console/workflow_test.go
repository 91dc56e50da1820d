package console

import (
	"slices"
	"testing"

	"github.com/pluto-sched/pluto/internal/apijson"
)

// A graph's scope: upstream jobs farthest first, the job, downstream jobs
// nearest first, each once (a diamond's join once), others left out.
func TestGraphScope(t *testing.T) {
	dep := func(names ...string) []apijson.Dependency {
		var out []apijson.Dependency
		for _, n := range names {
			out = append(out, apijson.Dependency{Job: n})
		}
		return out
	}
	jobs := []apijson.Job{
		{Name: "root"}, {Name: "mid", DependsOn: dep("root")},
		{Name: "b", DependsOn: dep("mid")}, {Name: "c", DependsOn: dep("mid")},
		{Name: "d", DependsOn: dep("b", "c")}, {Name: "other"},
	}
	if got, want := graphScope(jobs, "mid"), []string{"root", "mid", "b", "c", "d"}; !slices.Equal(got, want) {
		t.Errorf("scope of mid: %v, want %v", got, want)
	}
	if got, want := graphScope(jobs, "d"), []string{"root", "mid", "c", "b", "d"}; !slices.Equal(got, want) {
		t.Errorf("scope of d: %v, want %v (upstream farthest first)", got, want)
	}
}
