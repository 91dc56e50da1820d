package store

import (
	"fmt"
	"slices"
)

// The per-run log caps, decided the same way by every backend: a backend
// reads the counters and current attempt of the runs a LogAppend touches
// (locking them where several servers write), asks PlanLogAppend what to
// insert and what the counters become, and writes both in the same
// transaction.

// LogRunState is what a backend read about one run before appending.
type LogRunState struct {
	Attempt int // the run's current attempt
	Stats   LogStats
}

// LogPlan is what a LogAppend writes.
type LogPlan struct {
	Keep   []LogLine           // the lines to insert, in order, cap markers included
	Stats  map[string]LogStats // the new counters of every known run touched
	Result LogAppendResult
}

// RunIDs returns the distinct runs p touches (its lines' and Dropped's),
// sorted: the order in which a backend locks their counters, so two
// appends never wait for each other in a cycle.
func (p *LogAppendParams) RunIDs() []string {
	seen := make(map[string]bool, len(p.Dropped)+1)
	var ids []string
	add := func(id string) {
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	for i := range p.Lines {
		add(p.Lines[i].RunID)
	}
	for id := range p.Dropped {
		add(id)
	}
	slices.Sort(ids)
	return ids
}

// PlanLogAppend applies p's fence and caps to the runs' states (a run
// missing from states is unknown: its lines are fenced).
func PlanLogAppend(p *LogAppendParams, states map[string]LogRunState) LogPlan {
	plan := LogPlan{Stats: make(map[string]LogStats, len(states)), Keep: make([]LogLine, 0, len(p.Lines))}
	for id, st := range states {
		plan.Stats[id] = st.Stats
	}
	for i := range p.Lines {
		l := &p.Lines[i]
		st, ok := states[l.RunID]
		if !ok || l.Attempt != st.Attempt {
			plan.Result.Fenced++
			continue
		}
		c := plan.Stats[l.RunID]
		n := int64(len(l.Text))
		if c.Dropped == 0 && (p.MaxLines <= 0 || c.Lines < p.MaxLines) && (p.MaxBytes <= 0 || c.Bytes+n <= p.MaxBytes) {
			c.Lines++
			c.Bytes += n
			plan.Keep = append(plan.Keep, *l)
		} else {
			if c.Dropped == 0 {
				plan.Keep = append(plan.Keep, LogLine{RunID: l.RunID, Attempt: l.Attempt, Time: l.Time, Stream: "log",
					Level: "warn", Text: LogCapMarker(p.MaxLines, p.MaxBytes)})
			}
			c.Dropped++
			plan.Result.Dropped++
		}
		plan.Stats[l.RunID] = c
	}
	for id, n := range p.Dropped {
		if c, ok := plan.Stats[id]; ok && n > 0 {
			c.Dropped += n
			plan.Stats[id] = c
		}
	}
	for id, c := range plan.Stats {
		if c.Dropped > 0 {
			plan.Result.Capped = append(plan.Result.Capped, id)
		}
	}
	return plan
}

// LogCapMarker is the text of the line stored when a run first drops a
// line.
func LogCapMarker(maxLines, maxBytes int64) string {
	return fmt.Sprintf("log capped at %d lines / %s: further lines dropped", maxLines, FormatBytes(maxBytes))
}

// FormatBytes writes a size as people set it: "1 MiB", "64 KiB", "1000 B".
func FormatBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}
