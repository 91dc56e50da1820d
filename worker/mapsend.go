package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	plutov1 "github.com/pluto-sched/pluto/internal/gen/pluto/v1"
)

// The stream side of Run.Map. A Map waits in Worker.maps, keyed by its
// attempt, until the server's MapAck for that attempt comes; until then it
// is sent again on every new stream (welcomed) and every mapResendInterval
// on the same one, since a Map or its answer lost with a stream would
// leave the handler waiting for good. Resending is safe: the server makes
// a run's children once and answers any later Map with them.
//
// An attempt whose Map was answered says so on its result (Result.mapped):
// a server the worker reconnected to did not see the Map, and must still
// make the run its children's parent (or cancel them).

// mapResendInterval is how long a Map waits for its MapAck on one stream
// before it is sent again (Worker.mapResend; tests shorten it).
const mapResendInterval = 5 * time.Second

// errMapRunEnded ends a Map still waiting when its run's handler has
// returned (it was called with a context that outlived the handler's).
var errMapRunEnded = errors.New("worker: Map: the run's handler has returned")

// pendingMap is one Run.Map waiting for its MapAck. ack or err is set, under
// Worker.mu, before done is closed.
type pendingMap struct {
	msg  *plutov1.Map
	done chan struct{}
	ack  *plutov1.MapAck
	err  error
}

func (p *pendingMap) result() (MapResult, error) {
	if p.err != nil {
		return MapResult{}, p.err
	}
	if e := p.ack.GetError(); e != "" {
		return MapResult{}, fmt.Errorf("worker: Map refused by the server: %s", e)
	}
	return MapResult{Children: int(p.ack.GetChildren()), Existing: p.ack.GetExisting()}, nil
}

// sendMap is Run.Map for a dispatched run: it queues the Map and waits for
// its answer, resending it while none comes.
func (w *Worker) sendMap(ctx context.Context, r *Run, parts [][]byte, opt MapOptions) (MapResult, error) {
	key := runKey{r.id, r.attempt}
	p := &pendingMap{
		msg:  &plutov1.Map{RunId: r.id, Attempt: r.attempt, Parts: parts, MinSuccess: opt.MinSuccess, Merge: opt.Merge},
		done: make(chan struct{}),
	}
	w.mu.Lock()
	switch {
	case r.stale:
		w.mu.Unlock()
		return MapResult{}, fmt.Errorf("worker: Map: %w", ErrStaleRun)
	case r.state != stateRunning:
		w.mu.Unlock()
		return MapResult{}, errMapRunEnded
	}
	if w.maps == nil {
		w.maps = make(map[runKey][]*pendingMap)
	}
	w.maps[key] = append(w.maps[key], p)
	w.outMaps = append(w.outMaps, p.msg)
	w.mu.Unlock()
	w.signal(w.wake)
	defer w.dropMap(key, p)

	every := w.mapResend
	if every <= 0 {
		every = mapResendInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return p.result()
		case <-t.C:
			w.resendMap(key, p)
		case <-ctx.Done():
			select {
			case <-p.done: // answered after all: the children are made
				return p.result()
			default:
			}
			return MapResult{}, fmt.Errorf("worker: Map: %w", ctx.Err())
		}
	}
}

// resendMap queues p's Map again if it is still unanswered. Not while no
// stream is up, nor twice in the outbox: a new stream resends it anyway.
func (w *Worker) resendMap(key runKey, p *pendingMap) {
	w.mu.Lock()
	queued := w.connected && slices.Contains(w.maps[key], p) && !slices.Contains(w.outMaps, p.msg)
	if queued {
		w.outMaps = append(w.outMaps, p.msg)
	}
	w.mu.Unlock()
	if queued {
		w.signal(w.wake)
	}
}

// dropMap forgets p once its Map has returned, answered or not.
func (w *Worker) dropMap(key runKey, p *pendingMap) {
	w.mu.Lock()
	w.removeMapLocked(key, p)
	w.mu.Unlock()
}

// removeMapLocked takes p out of the registry and out of the outbox (no
// use sending a Map nobody waits for).
func (w *Worker) removeMapLocked(key runKey, p *pendingMap) {
	ps := slices.DeleteFunc(w.maps[key], func(q *pendingMap) bool { return q == p })
	if len(ps) == 0 {
		delete(w.maps, key)
	} else {
		w.maps[key] = ps
	}
	w.outMaps = slices.DeleteFunc(w.outMaps, func(m *plutov1.Map) bool { return m == p.msg })
}

// mapAckLocked hands a MapAck to the oldest Map of its attempt still
// waiting. An answer nobody waits for (a resent Map answered twice, a Map
// whose context ended) is dropped, but children it reports made while the
// handler runs still mark the attempt mapped.
func (w *Worker) mapAckLocked(a *plutov1.MapAck) {
	key := runKey{a.GetRunId(), a.GetAttempt()}
	if r := w.held[key]; r != nil && r.state == stateRunning && a.GetError() == "" {
		r.mapped = true
	}
	ps := w.maps[key]
	if len(ps) == 0 {
		return
	}
	p := ps[0]
	w.removeMapLocked(key, p)
	p.ack = a
	close(p.done)
}

// endMapsLocked ends the Maps of a run whose handler has returned.
func (w *Worker) endMapsLocked(key runKey) {
	for _, p := range w.maps[key] {
		w.outMaps = slices.DeleteFunc(w.outMaps, func(m *plutov1.Map) bool { return m == p.msg })
		p.err = errMapRunEnded
		close(p.done)
	}
	delete(w.maps, key)
}

// requeueMapsLocked rebuilds the Maps to send on a new stream: every one
// still unanswered of a run still running here.
func (w *Worker) requeueMapsLocked() {
	clear(w.outMaps)
	w.outMaps = w.outMaps[:0]
	for key, ps := range w.maps {
		if r := w.held[key]; r == nil || r.state != stateRunning {
			continue // stale: its handler's context is cancelled
		}
		for _, p := range ps {
			w.outMaps = append(w.outMaps, p.msg)
		}
	}
}
