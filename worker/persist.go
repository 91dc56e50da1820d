package worker

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	plutov1 "github.com/pluto-sched/pluto/internal/gen/pluto/v1"
)

// The persister: with Options.ResultDir, one goroutine moves results that
// are not acknowledged quickly to the result store. A healthy stream never
// waits on the disk: the runner that finishes a run only appends it to
// w.unsaved (under the lock it already holds), and ResultAcks pop it again.
// The persister ticks every persistTick while w.unsaved is not empty and
// writes, in one fsync'd append, every result that has waited there for two
// ticks — or, when the stream is down, every result at once. A result that
// is already on disk when its ResultAck (or a stale Welcome) arrives gets a
// tombstone.

// defaultPersistTick is how often the persister looks for results waiting
// for their acknowledgement: a result is on disk at most two ticks (plus the
// write) after its handler returned, unless it was acknowledged first.
const defaultPersistTick = 100 * time.Millisecond

// diskState says where a finished run's result is, as far as the result
// store goes.
type diskState uint8

const (
	diskNone    diskState = iota // memory only
	diskWriting                  // the persister is appending it
	diskStored                   // in the store until a tombstone is written
	diskNever                    // too large for a record: memory only, for good
)

// unsavedRun is an entry of Worker.unsaved: a result in memory only, and
// the persister tick when it was queued.
type unsavedRun struct {
	r     *Run
	epoch uint64
}

// openResultStore opens Options.ResultDir and takes over the results it
// holds: they become finished runs waiting for their ResultAck, listed as
// held in the next Hello and sent after the Welcome.
func (w *Worker) openResultStore() error {
	if w.opts.ResultDir == "" {
		return nil
	}
	st, results, err := w.openStore(w.opts.ResultDir)
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	w.store = st
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, res := range results {
		key := runKey{res.GetRunId(), res.GetAttempt()}
		if _, dup := w.held[key]; dup {
			continue
		}
		w.seq++
		w.held[key] = &Run{
			id:           key.id,
			attempt:      key.attempt,
			state:        stateFinished,
			seq:          w.seq,
			resultQueued: true,
			report:       res,
			disk:         diskStored,
		}
		w.stored++
	}
	if w.stored > 0 {
		w.log.Info("results from an earlier run of this worker to deliver", "results", w.stored, "dir", w.opts.ResultDir)
	}
	return nil
}

// openFileResultStore is the default Worker.openStore.
func (w *Worker) openFileResultStore(dir string) (resultStore, []*plutov1.Result, error) {
	st, load, err := openFileStore(dir)
	if err != nil {
		return nil, nil, err
	}
	if load.dropped > 0 {
		w.log.Warn("result store: ignored a torn or corrupt tail (a crash during a write)", "dir", dir, "bytes", load.dropped)
	}
	return st, load.results, nil
}

// unsavedLocked notes a result that is in memory only: the persister writes
// it if it is not acknowledged soon, at once if the stream is down.
func (w *Worker) unsavedLocked(r *Run) {
	if w.storeClosed {
		return
	}
	w.unsaved = append(w.unsaved, unsavedRun{r, w.persistEpoch})
	if !w.connected || w.persistIdle {
		w.persistIdle = false
		w.signal(w.persistWake)
	}
}

// forgetResultLocked drops a result the server acknowledged (accepted or
// rejected) or declared stale; one on disk gets a tombstone.
func (w *Worker) forgetResultLocked(r *Run) {
	r.report = nil
	if w.store == nil {
		return
	}
	if r.disk == diskStored {
		w.stored--
		w.outRemove = append(w.outRemove, runKey{r.id, r.attempt})
		if w.persistIdle {
			w.persistIdle = false
			w.signal(w.persistWake)
		}
	}
	// diskWriting: the persister sees report == nil after its write and
	// removes the result then.
	w.trimUnsavedLocked()
}

// needsSave reports whether r's result is still to be written.
func (r *Run) needsSave() bool { return r.report != nil && r.disk == diskNone }

// trimUnsavedLocked pops the entries of w.unsaved that need nothing any
// more (acknowledged, or handed to the persister).
func (w *Worker) trimUnsavedLocked() {
	for w.unsavedHead < len(w.unsaved) && !w.unsaved[w.unsavedHead].r.needsSave() {
		w.unsaved[w.unsavedHead] = unsavedRun{}
		w.unsavedHead++
	}
	switch {
	case w.unsavedHead == len(w.unsaved):
		w.unsaved, w.unsavedHead = w.unsaved[:0], 0
	case w.unsavedHead >= 1024 && w.unsavedHead*2 >= len(w.unsaved):
		n := copy(w.unsaved, w.unsaved[w.unsavedHead:])
		clear(w.unsaved[n:])
		w.unsaved, w.unsavedHead = w.unsaved[:n], 0
	}
}

// persistLoop is the persister goroutine. It ticks only while results wait
// in w.unsaved or tombstones are pending.
func (w *Worker) persistLoop(ctx context.Context) {
	t := time.NewTicker(w.persistTick)
	defer t.Stop()
	for {
		idle := w.persist(false)
		if idle {
			t.Stop()
		}
		select {
		case <-ctx.Done():
			return
		case <-w.persistWake:
			if idle {
				t.Reset(w.persistTick)
			}
		case <-t.C:
			w.mu.Lock()
			w.persistEpoch++
			w.mu.Unlock()
		}
	}
}

// persist writes the results that waited two ticks for their ResultAck
// (all of them if the stream is down, or if final), then the pending
// tombstones. final is the last call, when Run returns: results finished
// after it are not stored. It reports whether the persister may stop
// ticking: nothing is waiting.
func (w *Worker) persist(final bool) (idle bool) {
	w.mu.Lock()
	all := final || !w.connected
	if final {
		w.storeClosed = true
	}
	var batch []unsavedRun
	var results []*plutov1.Result
	for i := w.unsavedHead; i < len(w.unsaved); i++ {
		u := w.unsaved[i]
		r := u.r
		if !r.needsSave() {
			continue
		}
		if !all && u.epoch+2 > w.persistEpoch {
			break // finish order is epoch order: the rest are younger
		}
		if proto.Size(r.report) >= maxRecordBytes {
			r.disk = diskNever
			w.log.Warn("result too large for the result store: kept in memory only", "run_id", r.id, "attempt", r.attempt)
			continue
		}
		r.disk = diskWriting
		batch = append(batch, u)
		results = append(results, r.report)
	}
	w.trimUnsavedLocked()
	remove := w.outRemove
	w.outRemove = nil
	w.mu.Unlock()

	var err error
	if len(results) > 0 {
		err = w.store.Append(results)
		w.noteStoreErr("cannot write results to the result store; they stay in memory and are retried", err)
	}
	w.mu.Lock()
	for _, u := range batch {
		r := u.r
		switch {
		case err != nil:
			r.disk = diskNone
			if r.report != nil {
				w.unsaved = append(w.unsaved, u) // retried at the next tick
			}
		case r.report == nil:
			// Acknowledged while it was being written.
			r.disk = diskStored
			remove = append(remove, runKey{r.id, r.attempt})
		default:
			r.disk = diskStored
			w.stored++
		}
	}
	w.mu.Unlock()

	if len(remove) > 0 {
		if rerr := w.store.Remove(remove); rerr != nil {
			// The results stay on disk: a later start sends them again and
			// the server rejects them.
			w.log.Warn("cannot remove acknowledged results from the result store", "results", len(remove), "err", rerr)
		}
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	idle = w.unsavedHead == len(w.unsaved) && len(w.outRemove) == 0
	w.persistIdle = idle
	return idle
}

// noteStoreErr logs the first of a series of append failures and the
// recovery after it. Only the persister (then Run, after it) calls it.
func (w *Worker) noteStoreErr(msg string, err error) {
	switch {
	case err != nil && !w.storeFailing:
		w.storeFailing = true
		w.log.Error(msg, "dir", w.opts.ResultDir, "err", err)
	case err == nil && w.storeFailing:
		w.storeFailing = false
		w.log.Info("result store writable again", "dir", w.opts.ResultDir)
	}
}

// closeResultStore stores every result still unacknowledged and closes the
// store. Run calls it last, once the sessions and the persister are gone.
func (w *Worker) closeResultStore() {
	if w.store == nil {
		return
	}
	w.persist(true)
	if err := w.store.Close(); err != nil {
		w.log.Error("closing the result store", "dir", w.opts.ResultDir, "err", err)
	}
	w.mu.Lock()
	n := w.stored
	w.mu.Unlock()
	if n > 0 {
		w.log.Warn("undelivered results kept in the result store for the next start", "results", n, "dir", w.opts.ResultDir)
	}
}
