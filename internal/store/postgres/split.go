package postgres

import (
	"context"
	"fmt"

	"github.com/pluto-sched/pluto/internal/store"
)

// Splits (store.Split; migration 00017_split): a run that becomes a
// fan-out's parent when it is dispatched (FanoutExpand, fanout.go). The
// split is a JSON document in the column split, NULL for every other run.
// RunInsert's statements do not name it — the hot insert binds no more
// arrays for a column nearly every run leaves NULL — and the runs that
// have one get it from one more statement after the insert (setSplits),
// a HOT update by seq (no index names split). runCols reads it last.

// sqlSetSplits stores splits. Arguments: arrays of seq and split.
const sqlSetSplits = `UPDATE runs SET split = u.split
	FROM unnest($1::int8[], $2::text[]) AS u(seq, split)
	WHERE runs.seq = u.seq`

// setSplits stores, in one statement, the splits of the runs RunInsert
// inserted (out[i].Run set; not those refused for their key or slot, whose
// run is another's), and puts them in the runs returned.
func (t *tx) setSplits(ctx context.Context, runs []store.RunInsertParams, docs []string, out []store.RunInsertResult) error {
	var (
		seqs  []int64
		split []string
	)
	for i, doc := range docs {
		if doc == "" || out[i].Run == nil || out[i].Existing {
			continue
		}
		seqs, split = append(seqs, out[i].Run.Seq), append(split, doc)
		s := *runs[i].Split
		out[i].Run.Split = &s
	}
	if len(seqs) == 0 {
		return nil
	}
	tag, err := t.q.Exec(ctx, sqlSetSplits, seqs, split)
	if err != nil {
		return t.s.wrap("RunInsert", err)
	}
	if tag.RowsAffected() != int64(len(seqs)) {
		return fmt.Errorf("postgres: RunInsert: %d splits stored, want %d", tag.RowsAffected(), len(seqs))
	}
	return nil
}
