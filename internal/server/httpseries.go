package server

import (
	"context"
	"net/http"
	"time"

	"github.com/pluto-sched/pluto/internal/apijson"
	"github.com/pluto-sched/pluto/internal/engine"
	"github.com/pluto-sched/pluto/internal/store"
)

// GET /api/v1/stats/series?window=hour|day[&group=G][&job=J] (docs/api.md):
// the runs ended per minute of the last hour or per hour of the last day,
// per terminal status, from the store's throughput buckets. The store
// answers per group; the handler sums the groups the token may see (a
// token limited to groups: group= must be one of them, 403 otherwise) and
// fills the steps without ends with zeros.

// seriesSource is the engine's series; *engine.Engine implements it.
type seriesSource interface {
	Series(ctx context.Context, p store.SeriesParams) (store.Series, error)
}

var _ seriesSource = (*engine.Engine)(nil)

func (h *httpAPI) series(src seriesSource) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		p := store.SeriesParams{Now: time.Now(), Window: q.Get("window"), Group: q.Get("group"), Job: q.Get("job")}
		if p.Window != store.SeriesHour && p.Window != store.SeriesDay {
			writeError(w, badRequest("window", "window must be %q or %q, not %q", store.SeriesHour, store.SeriesDay, p.Window))
			return
		}
		if p.Group != "" {
			if err := checkGroup(r.Context(), p.Group); err != nil {
				writeError(w, httpAuthError(err))
				return
			}
		}
		s, err := src.Series(r.Context(), p)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, buildSeries(p.Window, s, principal(r.Context()).AllowsGroup))
	}
}

// buildSeries sums the allowed groups' points into one point per step.
func buildSeries(window string, s store.Series, allowed func(string) bool) apijson.StatsSeries {
	out := apijson.StatsSeries{Window: window, StepSeconds: int(s.Step / time.Second),
		Points: make([]apijson.SeriesPoint, s.Steps)}
	for i := range out.Points {
		out.Points[i].T = s.From.Add(time.Duration(i) * s.Step).UTC().Format(time.RFC3339)
	}
	for _, pt := range s.Points {
		i := int(pt.Start.Sub(s.From) / s.Step)
		if i < 0 || i >= len(out.Points) || !allowed(pt.Group) {
			continue
		}
		o := &out.Points[i]
		switch pt.Status {
		case store.StatusSucceeded:
			o.Succeeded += pt.Count
		case store.StatusFailed:
			o.Failed += pt.Count
		case store.StatusTimedOut:
			o.TimedOut += pt.Count
		case store.StatusCancelled:
			o.Cancelled += pt.Count
		case store.StatusSkipped:
			o.Skipped += pt.Count
		}
	}
	return out
}
