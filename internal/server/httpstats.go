package server

import (
	"context"
	"net/http"
	"sort"
	"time"

	"github.com/pluto-sched/pluto/internal/apijson"
	"github.com/pluto-sched/pluto/internal/engine"
	"github.com/pluto-sched/pluto/internal/store"
)

// GET /api/v1/stats[?group=G][&job=J] (docs/api.md): run counts per group
// and job from the store's counters (no scan of the runs), queue depth and
// age, throughput and dispatch latency from the store's time buckets, owed
// callbacks, and the workers connected to this server.
//
// A token limited to groups sees only those: group= must name one of
// them (403 otherwise), and without it the other groups are left out;
// callbacks_owed, which counts every group, is 0 for it.

// statsSource is the engine's statistics; *engine.Engine implements it.
// Engines without it (test fakes) do not serve the route.
type statsSource interface {
	Stats(ctx context.Context, p store.StatsParams) (store.Stats, error)
}

var _ statsSource = (*engine.Engine)(nil)

func (h *httpAPI) stats(src statsSource) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		p := store.StatsParams{Now: time.Now(), Group: q.Get("group"), Job: q.Get("job")}
		if p.Group != "" {
			if err := checkGroup(r.Context(), p.Group); err != nil {
				writeError(w, httpAuthError(err))
				return
			}
		}
		st, err := src.Stats(r.Context(), p)
		if err != nil {
			writeError(w, err)
			return
		}
		pr := principal(r.Context())
		var workers []engine.WorkerInfo
		for _, wi := range h.eng.Workers() {
			if pr.AllowsGroup(wi.Group) {
				workers = append(workers, wi)
			}
		}
		if len(pr.Groups) > 0 {
			st = limitStats(st, pr.AllowsGroup)
		}
		writeJSON(w, http.StatusOK, buildStats(st, p, workers))
	}
}

// limitStats keeps the statistics of the groups allowed; the owed
// callbacks, counted over every group, are dropped.
func limitStats(st store.Stats, allowed func(string) bool) store.Stats {
	return store.Stats{
		Counts:     keepGroups(st.Counts, func(c store.RunCount) string { return c.Group }, allowed),
		Heads:      keepGroups(st.Heads, func(h store.QueueHead) string { return h.Group }, allowed),
		Throughput: keepGroups(st.Throughput, func(t store.Throughput) string { return t.Group }, allowed),
		Latency:    keepGroups(st.Latency, func(l store.DispatchLatency) string { return l.Group }, allowed),
	}
}

// keepGroups keeps the items whose group is allowed.
func keepGroups[T any](items []T, group func(T) string, allowed func(string) bool) []T {
	var out []T
	for _, it := range items {
		if allowed(group(it)) {
			out = append(out, it)
		}
	}
	return out
}

// terminalStatuses are the statuses a run ends with: the keys of the
// throughput maps.
var terminalStatuses = func() []store.RunStatus {
	var out []store.RunStatus
	for _, s := range store.AllStatuses {
		if s.Terminal() {
			out = append(out, s)
		}
	}
	return out
}()

// zeroThroughput has every terminal status in every window.
func zeroThroughput() apijson.Throughput {
	z := func() apijson.Counts {
		m := make(map[string]int64, len(terminalStatuses))
		for _, s := range terminalStatuses {
			m[string(s)] = 0
		}
		return m
	}
	return apijson.Throughput{LastMinute: z(), LastHour: z(), LastDay: z()}
}

// addThroughput adds one store row to t.
func addThroughput(t *apijson.Throughput, tp store.Throughput) {
	t.LastMinute[string(tp.Status)] += tp.LastMinute
	t.LastHour[string(tp.Status)] += tp.LastHour
	t.LastDay[string(tp.Status)] += tp.LastDay
}

// zeroCounts is a counts map with every status.
func zeroCounts() apijson.Counts {
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
			gs = &apijson.GroupStats{Group: g, Counts: zeroCounts(), Throughput: zeroThroughput()}
			groups[g] = gs
		}
		return gs
	}
	jobs := map[[2]string]*apijson.JobStats{}
	// Jobs with no throughput in the windows (most, in a long history)
	// share one zero Throughput, only read; a job gets its own when a row
	// of it comes.
	zeroTP, ownTP := zeroThroughput(), map[[2]string]bool{}
	job := func(g, j string) *apijson.JobStats {
		k := [2]string{g, j}
		js := jobs[k]
		if js == nil {
			js = &apijson.JobStats{Job: j, Counts: zeroCounts(), Throughput: zeroTP}
			jobs[k] = js
		}
		return js
	}
	for _, c := range st.Counts {
		group(c.Group).Counts[string(c.Status)] += c.Count
		job(c.Group, c.Job).Counts[string(c.Status)] += c.Count
	}
	// A job whose runs retention deleted still has its throughput.
	for _, tp := range st.Throughput {
		addThroughput(&group(tp.Group).Throughput, tp)
		js, k := job(tp.Group, tp.Job), [2]string{tp.Group, tp.Job}
		if !ownTP[k] {
			js.Throughput, ownTP[k] = zeroThroughput(), true
		}
		addThroughput(&js.Throughput, tp)
	}
	for _, l := range st.Latency {
		group(l.Group).DispatchLatencySeconds = apijson.DispatchLatency{
			P50: l.P50.Seconds(), P99: l.P99.Seconds(), Samples: l.Samples}
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
		Totals: apijson.StatsTotals{Counts: zeroCounts(), Throughput: zeroThroughput()}}
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
		for s := range gs.Throughput.LastMinute {
			out.Totals.Throughput.LastMinute[s] += gs.Throughput.LastMinute[s]
			out.Totals.Throughput.LastHour[s] += gs.Throughput.LastHour[s]
			out.Totals.Throughput.LastDay[s] += gs.Throughput.LastDay[s]
		}
		out.Totals.QueueDepth += gs.QueueDepth
		out.Totals.Workers += gs.Workers
		out.Totals.Slots += gs.Slots
		out.Groups = append(out.Groups, *gs)
	}
	return out
}
