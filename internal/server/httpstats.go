package server

import (
	"context"
	"net/http"
	"sort"

	"github.com/pluto-sched/pluto/internal/apijson"
	"github.com/pluto-sched/pluto/internal/engine"
	"github.com/pluto-sched/pluto/internal/store"
)

// GET /api/v1/stats[?group=G][&job=J] (docs/api.md): run counts per group
// and job from the store's counters (no scan of the runs), queue depth and
// age, owed callbacks, and the workers connected to this server.

// statsSource is the engine's statistics; *engine.Engine implements it.
// Engines without it (test fakes) do not serve the route.
type statsSource interface {
	Stats(ctx context.Context, p store.StatsParams) (store.Stats, error)
}

var _ statsSource = (*engine.Engine)(nil)

func (h *httpAPI) stats(src statsSource) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		p := store.StatsParams{Group: q.Get("group"), Job: q.Get("job")}
		st, err := src.Stats(r.Context(), p)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, buildStats(st, p, h.eng.Workers()))
	}
}

// zeroCounts is a counts map with every status.
func zeroCounts() map[string]int64 {
	m := make(map[string]int64, len(store.AllStatuses))
	for _, s := range store.AllStatuses {
		m[string(s)] = 0
	}
	return m
}

// buildStats shapes the store's statistics for the API. A group appears
// when it has runs, queued runs or connected workers.
func buildStats(st store.Stats, p store.StatsParams, workers []engine.WorkerInfo) apijson.Stats {
	groups := map[string]*apijson.GroupStats{}
	group := func(g string) *apijson.GroupStats {
		gs := groups[g]
		if gs == nil {
			gs = &apijson.GroupStats{Group: g, Counts: zeroCounts()}
			groups[g] = gs
		}
		return gs
	}
	jobs := map[[2]string]*apijson.JobStats{}
	for _, c := range st.Counts {
		gs := group(c.Group)
		gs.Counts[string(c.Status)] += c.Count
		k := [2]string{c.Group, c.Job}
		js := jobs[k]
		if js == nil {
			js = &apijson.JobStats{Job: c.Job, Counts: zeroCounts()}
			jobs[k] = js
		}
		js.Counts[string(c.Status)] += c.Count
	}
	for _, h := range st.Heads {
		gs := group(h.Group)
		if age := p.Now.Sub(h.RunAt).Seconds(); age > gs.OldestQueuedAgeSeconds {
			gs.OldestQueuedAgeSeconds = age
		}
	}
	for _, wi := range workers {
		if p.Group != "" && wi.Group != p.Group {
			continue
		}
		gs := group(wi.Group)
		gs.Workers++
		gs.Slots += wi.Capacity
	}
	out := apijson.Stats{Groups: []apijson.GroupStats{}, CallbacksOwed: st.CallbacksOwed,
		Totals: apijson.StatsTotals{Counts: zeroCounts()}}
	keys := make([][2]string, 0, len(jobs))
	for k := range jobs {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i][0] < keys[j][0] || keys[i][0] == keys[j][0] && keys[i][1] < keys[j][1]
	})
	for _, k := range keys {
		gs := groups[k[0]]
		gs.Jobs = append(gs.Jobs, *jobs[k])
	}
	names := make([]string, 0, len(groups))
	for g := range groups {
		names = append(names, g)
	}
	sort.Strings(names)
	for _, g := range names {
		gs := groups[g]
		gs.QueueDepth = gs.Counts[string(store.StatusQueued)]
		for s, n := range gs.Counts {
			out.Totals.Counts[s] += n
		}
		out.Totals.QueueDepth += gs.QueueDepth
		out.Totals.Workers += gs.Workers
		out.Totals.Slots += gs.Slots
		out.Groups = append(out.Groups, *gs)
	}
	return out
}
