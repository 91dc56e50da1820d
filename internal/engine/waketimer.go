package engine

import (
	"time"

	"github.com/pluto-sched/pluto/internal/clock"
)

// wakeTimer is one timer armed for the earliest of the times it is given.
// Each leader loop that reads its next deadline from the store (the
// promoter, the cron loop, the feedback deliverer) keeps one instead of a
// timer per run, job or delivery. Guarded by its owner's lock.
type wakeTimer struct {
	timer clock.Timer
	at    time.Time
}

// arm makes sure fire runs by at: it re-arms only for an earlier time.
func (w *wakeTimer) arm(clk clock.Clock, at time.Time, fire func()) {
	if w.timer != nil && !at.Before(w.at) {
		return
	}
	if w.timer != nil {
		w.timer.Stop()
	}
	w.at = at
	w.timer = clk.AfterFunc(max(0, at.Sub(clk.Now())), fire)
}

// fired forgets the timer that just fired and returns the time it was
// armed for.
func (w *wakeTimer) fired() time.Time {
	at := w.at
	w.timer, w.at = nil, time.Time{}
	return at
}

// stop stops the timer.
func (w *wakeTimer) stop() {
	if w.timer != nil {
		w.timer.Stop()
	}
	w.timer, w.at = nil, time.Time{}
}
