package listq

import (
	"context"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// fakeRuns is a Querier over seqs (ascending, with gaps) and their times.
type fakeRuns struct {
	seqs    []int64
	created map[int64]time.Time
}

func (f *fakeRuns) MaxSeq(context.Context) (int64, error) { return f.seqs[len(f.seqs)-1], nil }

func (f *fakeRuns) RunFrom(_ context.Context, from int64) (int64, time.Time, bool, error) {
	i := sort.Search(len(f.seqs), func(i int) bool { return f.seqs[i] >= from })
	if i == len(f.seqs) {
		return 0, time.Time{}, false, nil
	}
	return f.seqs[i], f.created[f.seqs[i]], true, nil
}

func (f *fakeRuns) Window(context.Context, string, []any) (int64, int, error) { panic("unused") }
func (f *fakeRuns) Runs(context.Context, string, []any) ([]*store.Run, error) { panic("unused") }

// TestSeqBoundsKeepEveryRun: whatever the jitter between created_at and
// seq (up to CreatedSlack) and the gaps in seq, the seq bounds of a time
// range never cut off a run created in it.
func TestSeqBoundsKeepEveryRun(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := rand.New(rand.NewPCG(1, 2))
	f := &fakeRuns{created: map[int64]time.Time{}}
	seq := int64(0)
	for i := range 5000 {
		seq += 1 + r.Int64N(3) // gaps
		jitter := time.Duration(r.Int64N(int64(CreatedSlack))) - CreatedSlack/2
		f.seqs = append(f.seqs, seq)
		f.created[seq] = t0.Add(time.Duration(i)*100*time.Millisecond + jitter)
	}
	ctx := context.Background()
	for range 300 {
		a := t0.Add(time.Duration(r.Int64N(int64(7 * time.Minute)))) // the runs span 8m20s
		bt := a.Add(time.Duration(r.Int64N(int64(time.Minute))))
		p := store.RunListParams{CreatedAfter: a, CreatedBefore: bt}
		b, empty, err := seqBounds(ctx, f, p, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range f.seqs {
			c := f.created[s]
			if c.Before(a) || !c.Before(bt) {
				continue
			}
			if empty || s <= b.lo || (b.hi > 0 && s >= b.hi) {
				t.Fatalf("[%v, %v): run %d created %v outside bounds %+v (empty %v)", a, bt, s, c, b, empty)
			}
		}
		// Tight: the bounds hold about the range plus the slack.
		if n := b.hi - b.lo; b.hi == 0 || n > int64(bt.Sub(a)/(100*time.Millisecond))*3+200 {
			t.Errorf("[%v, %v): bounds %+v are loose", a, bt, b)
		}
	}
}
