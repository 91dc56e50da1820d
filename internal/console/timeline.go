package console

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pluto-sched/pluto/internal/apijson"
	"github.com/pluto-sched/pluto/internal/cron"
)

// A job's timeline: the slots its schedule expected over the last day
// against the runs it has for them — fired, late, skipped (misfire or
// overlap), missing — from one page of the job's runs.

const (
	timelineSpan  = 24 * time.Hour
	timelineSlots = 288 // the newest slots shown (every 5 minutes for a day)
	timelineRuns  = 1000
	lateAfter     = time.Minute // a run created this long after its slot was late
)

type timeline struct {
	Slots  []slot
	Counts map[string]int
	// Partial: the page of runs did not reach back to the oldest slot
	// shown; slots before it are "unknown", not "missing".
	Partial bool
}

type slot struct {
	At    string // formatted in the job's zone
	Class string // fired, late, skipped, missing, unknown, due
	Run   *apijson.Run
}

func (c *Console) jobTimeline(r *http.Request, v *view, j apijson.Job, now time.Time) (timeline, error) {
	tl := timeline{Counts: map[string]int{}}
	if j.Schedule == "" {
		return tl, nil
	}
	loc := time.UTC
	if j.Timezone != "" {
		if l, err := time.LoadLocation(j.Timezone); err == nil {
			loc = l
		}
	}
	s, err := cron.ParseIn(j.Schedule, loc)
	if err != nil {
		return tl, nil // a stored job whose schedule no longer parses has no timeline
	}
	// A slot before the job existed was never expected.
	from := now.Add(-timelineSpan)
	if j.CreatedAt != nil {
		if ct, err := time.Parse(time.RFC3339Nano, *j.CreatedAt); err == nil && ct.After(from) {
			from = ct
		}
	}
	var expected []time.Time
	for t := s.Next(from); !t.IsZero() && !t.After(now); t = s.Next(t) {
		expected = append(expected, t)
		if len(expected) > timelineSlots {
			expected = expected[1:]
		}
	}
	if len(expected) == 0 {
		return tl, nil
	}
	q := url.Values{"job": {j.Name}, "limit": {"1000"}, "created_after": {expected[0].Add(-time.Minute).UTC().Format(time.RFC3339Nano)}}
	var runs apijson.List[apijson.Run]
	if err := c.api.call(r.Context(), v.secret(), http.MethodGet, "/api/v1/runs", q, nil, &runs); err != nil {
		return tl, err
	}
	bySlot := make(map[int64]*apijson.Run, len(runs.Items))
	var oldest time.Time
	for i := range runs.Items {
		run := &runs.Items[i]
		if run.LogicalTime == nil {
			continue
		}
		if lt, err := time.Parse(time.RFC3339Nano, *run.LogicalTime); err == nil {
			bySlot[lt.Unix()] = run
			if oldest.IsZero() || lt.Before(oldest) {
				oldest = lt
			}
		}
	}
	tl.Partial = runs.NextCursor != ""
	for _, t := range expected {
		sl := slot{At: t.In(loc).Format("2006-01-02 15:04:05"), Run: bySlot[t.Unix()]}
		sl.Class = classify(sl.Run, t, now, tl.Partial && t.Before(oldest))
		tl.Counts[sl.Class]++
		tl.Slots = append(tl.Slots, sl)
	}
	return tl, nil
}

// classify says what became of a slot at t.
func classify(run *apijson.Run, t, now time.Time, beyondPage bool) string {
	switch {
	case run == nil && beyondPage:
		return "unknown"
	case run == nil && now.Sub(t) < lateAfter:
		return "due" // the leader may be firing it right now
	case run == nil:
		return "missing"
	case run.Status == "skipped":
		return "skipped"
	}
	if run.CreatedAt != nil {
		if ct, err := time.Parse(time.RFC3339Nano, *run.CreatedAt); err == nil && ct.Sub(t) > lateAfter {
			return "late"
		}
	}
	return "fired"
}

// slotTitle is a slot's tooltip: its time, class and run.
func slotTitle(s slot) string {
	parts := []string{s.At, s.Class}
	if s.Run != nil {
		parts = append(parts, s.Run.ID, s.Run.Status)
		if s.Run.Error != nil {
			parts = append(parts, *s.Run.Error)
		}
	}
	return strings.Join(parts, " · ")
}
