package sqlite

import (
	"encoding/json"
	"fmt"

	"github.com/pluto-sched/pluto/internal/store"
)

// Splits (store.Split; migration 00019_split): a run that becomes a
// fan-out's parent when it is dispatched (FanoutExpand, fanout.go). The
// split is a JSON document in the column split, NULL for every other run.
// RunInsert's statements do not name it: they stay the ones the hot path
// prepared (a run with a split is rare), and the runs that have one get
// it from an UPDATE by rowid after their insert (setSplits). runCols reads
// it last.

func init() {
	wSQL[wSplitSet] = `UPDATE runs SET split = ? WHERE seq = ?`
}

// setSplits stores the splits of the runs RunInsert created (not those
// refused for their key or slot: the run returned is another's), and puts
// them in the runs returned.
func (t *tx) setSplits(runs []store.RunInsertParams, docs []string, out []store.RunInsertResult) error {
	for i, doc := range docs {
		if doc == "" || out[i].Existing {
			continue
		}
		t.bind()
		t.arg(doc)
		t.arg(out[i].Run.Seq)
		n, _, err := t.exec("RunInsert", wSplitSet)
		if err != nil {
			return err
		}
		if n != 1 {
			return fmt.Errorf("sqlite: RunInsert: run %q: its split updated %d rows", runs[i].ID, n)
		}
		s := *runs[i].Split
		out[i].Run.Split = &s
	}
	return nil
}

// decodeSplit decodes the split column: NULL is no split. The store wrote
// the document; one it cannot read (a damaged database) decodes as an
// empty split, which store.CheckSplit refuses, rather than as none, which
// would run a sharded run whole.
func decodeSplit(v any) *store.Split {
	var b []byte
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		b = []byte(x)
	case []byte:
		b = x
	}
	s := new(store.Split)
	if err := json.Unmarshal(b, s); err != nil {
		return new(store.Split)
	}
	return s
}
