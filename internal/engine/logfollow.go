package engine

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/pluto-sched/pluto/internal/clock"
	"github.com/pluto-sched/pluto/internal/store"
)

// Following a run's log
//
// A follower (the HTTP log stream) registers with FollowLogs and reads
// the run's new lines each time its wake channel fires: when lines of the
// run were written, and when the run ended. Nothing polls.
//
// On an exclusive store the log writer wakes the followers after each
// commit. On a shared store the worker may be connected to another
// server: a follower announces the run it follows (TopicLogWatch, like
// Wait's TopicWatch), and a writer publishes TopicLogs with the ids of the
// watched runs it wrote, so followers on every server wake. Runs nobody
// follows cost no notification (a NOTIFY per log batch would serialise
// every commit on PostgreSQL's notification queue). An announcement can
// cross the first lines written after it; a follower on a shared store
// therefore also re-reads every watchRecheck, and re-announces before its
// watch expires (watchTTL).

// logWatch remembers that some server follows run id's log.
func (e *Engine) logWatch(id string) {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	e.logWatches.add(id, e.clk.Now())
}

// logWatched reports whether some server follows run id's log.
func (e *Engine) logWatched(id string) bool {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	return e.logWatches.has(id, e.clk.Now())
}

// heardLogs wakes this server's followers of the runs in a TopicLogs
// payload.
func (e *Engine) heardLogs(payload string) {
	e.logFollow.wakeAll(strings.Split(payload, ","))
}

// FollowLogs registers a follower of run id's log. wake fires (it holds
// at most one signal) when new lines of the run may have been written or
// the run may have ended; the follower then reads from where it is. stop
// unregisters it and must be called. Register before the first read, so
// that nothing written between the read and the wait is missed.
func (e *Engine) FollowLogs(ctx context.Context, id string) (wake <-chan struct{}, stop func(), err error) {
	ch := make(chan struct{}, 1)
	e.logFollow.addChan(id, ch)
	e.waiters.addChan(id, ch)
	f := &follower{e: e, id: id, ch: ch}
	if e.cfg.ExclusiveStore {
		return ch, f.stop, nil
	}
	e.logWatch(id)
	if err := e.do(ctx, &notifyOp{notes: f.announcement()}, nil); err != nil {
		f.stop()
		return nil, nil, err
	}
	f.mu.Lock()
	f.announced = e.clk.Now()
	f.arm()
	f.mu.Unlock()
	return ch, f.stop, nil
}

// follower is one FollowLogs registration.
type follower struct {
	e  *Engine
	id string
	ch chan struct{}

	mu        sync.Mutex
	timer     clock.Timer // the next safety re-read (shared store)
	announced time.Time   // when the watches were last published
	stopped   bool
}

// announcement asks every server to tell this one about the run's lines
// and its end.
func (f *follower) announcement() []store.Notification {
	return []store.Notification{{Topic: store.TopicLogWatch, Payload: f.id}, {Topic: store.TopicWatch, Payload: f.id}}
}

// arm schedules the next safety re-read. Called with f.mu held.
func (f *follower) arm() {
	if f.stopped {
		return
	}
	f.timer = f.e.clk.AfterFunc(watchRecheck, f.recheck)
}

// recheck wakes the follower for a re-read and re-announces its watches
// before they expire.
func (f *follower) recheck() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return
	}
	select {
	case f.ch <- struct{}{}:
	default:
	}
	if now := f.e.clk.Now(); now.Sub(f.announced) >= watchTTL/2 {
		f.announced = now
		f.e.logWatch(f.id)
		f.e.ops.push(&notifyOp{notes: f.announcement()})
	}
	f.arm()
}

func (f *follower) stop() {
	f.mu.Lock()
	f.stopped = true
	if f.timer != nil {
		f.timer.Stop()
	}
	f.mu.Unlock()
	f.e.logFollow.remove(f.id, f.ch)
	f.e.waiters.remove(f.id, f.ch)
}
