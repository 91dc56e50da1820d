package sqlite

import "github.com/pluto-sched/pluto/internal/store"

// The ended table (migration 00007_lists) lists by seq the runs that
// ended failed, cancelled, timed_out or skipped, for RunList
// (store/listq). The statements that end a run that way, or retry it, keep
// it; a succeeded finish — nearly every one — runs none of these.

const endedStatuses = `'failed', 'cancelled', 'timed_out', 'skipped'`

func init() {
	wSQL[wEndedAdd] = `INSERT OR IGNORE INTO ended (seq) SELECT seq FROM runs WHERE id = ? AND status IN (` + endedStatuses + `)`
	wSQL[wEndedDelete] = `DELETE FROM ended WHERE seq = ?`
}

// endsListed reports whether a run ending in s belongs in ended.
func endsListed(s store.RunStatus) bool {
	switch s {
	case store.StatusFailed, store.StatusCancelled, store.StatusTimedOut, store.StatusSkipped:
		return true
	}
	return false
}

// ended records that run id ended in a status ended lists.
func (t *tx) ended(op, id string) error {
	t.bind()
	t.arg(id)
	_, _, err := t.exec(op, wEndedAdd)
	return err
}

// unended takes a retried run out of ended.
func (t *tx) unended(op string, seq int64) error {
	t.bind()
	t.arg(seq)
	_, _, err := t.exec(op, wEndedDelete)
	return err
}
