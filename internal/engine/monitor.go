package engine

import "context"

// monitor is the liveness monitor, a component: it checks worker liveness
// a few times per suspect interval — a worker not heard from for
// SuspectAfter is suspect (no new runs), for DeadAfter is dead (its runs
// are requeued with a new attempt). A closed stream arms its own exact
// timer in Session.Close; the monitor catches workers whose stream stays
// open but silent. The sessions it judges are the engine's.
type monitor struct {
	e *Engine
	life
}

// Start begins the monitor's loop.
func (m *monitor) Start(ctx context.Context) error { return m.start(ctx, m.run) }

func (m *monitor) run(ctx context.Context) {
	e := m.e
	for e.sleep(ctx, max(e.live().SuspectAfter/4, 1)) { // read each time: Reconfigure may change it
		e.checkLiveness()
	}
}

func (e *Engine) checkLiveness() {
	e.disp.mu.Lock()
	defer e.disp.mu.Unlock()
	if !e.serving() {
		return
	}
	now := e.now()
	live := e.live()
	for _, s := range e.disp.sessions {
		silent := now.Sub(s.lastSeen)
		switch {
		case silent >= live.deadAfter(s.heartbeat):
			e.declareDead(s, "no heartbeat for "+silent.String())
		case silent >= live.suspectAfter(s.heartbeat) && s.state == WorkerAlive:
			s.state = WorkerSuspect
			e.log.Info("worker suspect", "worker", s.hello.WorkerID, "silent", silent)
		}
	}
}

// requeueOrphans hands back the runs recovered at start that no worker
// reclaimed within the grace period.
func (e *Engine) requeueOrphans() {
	e.disp.mu.Lock()
	defer e.disp.mu.Unlock()
	if !e.serving() || len(e.disp.orphans) == 0 {
		return
	}
	lost := make([]*flight, 0, len(e.disp.orphans))
	for id, f := range e.disp.orphans {
		lost = append(lost, f)
		delete(e.disp.orphans, id)
	}
	e.log.Info("requeueing runs not reclaimed after restart", "runs", len(lost))
	e.handBack(lost, "not reclaimed after restart", true)
}
