package engine

import "slices"

// Capped logs on the worker
//
// Once the store says a run is past its log cap (LogAppendResult.Capped),
// the log writer drops the run's further lines before they are queued. The
// worker would still format and send each of them, and the server receive
// and decode each, for nothing: so the session holding the run's current
// attempt is told once (Conn.LogsCapped), on the path CancelRun takes. A
// worker that understands it stops sending the attempt's lines and reports
// how many it dropped (LogDrops), which the writer adds to the run's count
// as it does its own early drops. A worker that does not keeps sending,
// and the writer drops the lines as before.

// maxLogDrop caps one attempt's reported count of dropped lines: a worker
// cannot overflow a run's counter, however it lies.
const maxLogDrop = 1 << 40

// tellCapped sends LogsCapped to the sessions holding the current attempts
// of runs ids (the runs a log write found capped), once per attempt and
// session. Runs this server does not hold, or that wait for a worker, are
// skipped: lines from a later attempt are dropped early, and the write
// that counts them names the run again.
func (e *Engine) tellCapped(ids []string) {
	e.disp.mu.Lock()
	defer e.disp.mu.Unlock()
	var (
		sessions []*Session
		refs     [][]RunRef
	)
	for _, id := range ids {
		f := e.disp.flights[id]
		if f == nil || f.session == nil || f.session.closed || f.logsTold == f.session {
			continue
		}
		f.logsTold = f.session
		i := slices.Index(sessions, f.session)
		if i < 0 {
			i = len(sessions)
			sessions, refs = append(sessions, f.session), append(refs, nil)
		}
		refs[i] = append(refs[i], f.ref())
	}
	for i, s := range sessions {
		s.conn.LogsCapped(refs[i])
	}
}

// LogDrops adds the lines the worker dropped unsent, after LogsCapped, to
// their runs' counts of dropped lines. They are fenced like log lines
// (Logs): a count is taken only for an attempt the worker holds, or one it
// reported lately that is still the run's latest here; other counts, and
// counts that are not positive, are ignored. Each count is cut to
// maxLogDrop.
func (s *Session) LogDrops(drops []LogDrop) {
	e := s.e
	var (
		add     map[string]int64
		ignored int
	)
	e.disp.mu.Lock()
	s.touch()
	for _, d := range drops {
		if d.Lines <= 0 || !s.owns(RunRef{RunID: d.RunID, Attempt: d.Attempt}) {
			ignored++
			continue
		}
		if add == nil {
			add = make(map[string]int64)
		}
		add[d.RunID] = min(add[d.RunID]+min(d.Lines, maxLogDrop), maxLogDrop)
	}
	e.disp.mu.Unlock()
	if ignored > 0 {
		e.log.Debug("ignored dropped-line counts for runs the worker does not hold", "worker", s.hello.WorkerID, "counts", ignored)
	}
	if len(add) > 0 {
		e.logw.addDropped(add)
	}
}

// owns reports whether the worker may report about ref's log: it holds the
// attempt, or reported it lately (s.recent) and no later attempt of the run
// is in flight here. Called with e.disp.mu held.
func (s *Session) owns(ref RunRef) bool {
	if ref.Attempt <= 0 {
		return false
	}
	if s.held[ref.RunID] == ref.Attempt {
		return true
	}
	if !slices.Contains(s.recent, ref) {
		return false
	}
	f := s.e.disp.flights[ref.RunID]
	return f == nil || f.attempt == ref.Attempt
}
