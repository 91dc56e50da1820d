package engine

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// errFlaky is the error a flakyStore injects.
var errFlaky = errors.New("flaky store: injected failure")

// flakyStore fails chosen writes of a real store: set("RunClaim", 2)
// makes the next two transactions that claim fail (rolled back), and
// fail["commit"] = 1 makes the next transaction commit and then report an
// error, as a store whose answer was lost does.
type flakyStore struct {
	store.Store
	mu   sync.Mutex
	fail map[string]int
}

func newFlaky(st store.Store) *flakyStore { return &flakyStore{Store: st, fail: map[string]int{}} }

// set arms n failures of what ("RunClaim", "RunFinish", "RunInsert", "LogAppend",
// "RunUnblockNext", "FanoutMap", "FanoutRelease", "commit"), or n transactions that take five seconds
// before ("slow") or after ("slowCommit") their writes.
func (f *flakyStore) set(what string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[what] = n
}

func (f *flakyStore) take(what string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail[what] > 0 {
		f.fail[what]--
		return true
	}
	return false
}

func (f *flakyStore) Tx(ctx context.Context, fn func(store.Tx) error) error {
	wrap := func(tx store.Tx) store.Tx { return &flakyTx{Tx: tx, f: f} }
	return flakyAround(ctx, f, f.Store.Tx, wrap, fn)
}

// LogTx fails and slows down as Tx does.
func (f *flakyStore) LogTx(ctx context.Context, fn func(store.LogTx) error) error {
	wrap := func(tx store.LogTx) store.LogTx { return &flakyLogTx{LogTx: tx, f: f} }
	return flakyAround(ctx, f, f.Store.LogTx, wrap, fn)
}

// flakyAround runs one transaction of either kind with the "slow",
// "slowCommit" and "commit" faults applied around it.
func flakyAround[T any](ctx context.Context, f *flakyStore, begin func(context.Context, func(T) error) error, wrap func(T) T, fn func(T) error) error {
	if f.take("slow") {
		time.Sleep(5 * time.Second) // fake time inside a synctest bubble
	}
	err := begin(ctx, func(tx T) error {
		err := fn(wrap(tx))
		if f.take("slowCommit") {
			time.Sleep(5 * time.Second) // written, not yet committed
		}
		return err
	})
	if err == nil && f.take("commit") {
		return errFlaky
	}
	return err
}

type flakyTx struct {
	store.Tx
	f *flakyStore
}

func (t *flakyTx) RunClaim(ctx context.Context, p store.RunClaimParams) ([]*store.Run, error) {
	if t.f.take("RunClaim") {
		return nil, errFlaky
	}
	return t.Tx.RunClaim(ctx, p)
}

func (t *flakyTx) RunFinish(ctx context.Context, p []store.RunFinishParams) ([]store.RunFinishResult, error) {
	if t.f.take("RunFinish") {
		return nil, errFlaky
	}
	return t.Tx.RunFinish(ctx, p)
}

func (t *flakyTx) RunInsert(ctx context.Context, p []store.RunInsertParams) ([]store.RunInsertResult, error) {
	if t.f.take("RunInsert") {
		return nil, errFlaky
	}
	return t.Tx.RunInsert(ctx, p)
}

func (t *flakyTx) RunUnblockNext(ctx context.Context, job string, now time.Time) (*store.Run, error) {
	if t.f.take("RunUnblockNext") {
		return nil, errFlaky
	}
	return t.Tx.RunUnblockNext(ctx, job, now)
}

type flakyLogTx struct {
	store.LogTx
	f *flakyStore
}

func (t *flakyLogTx) LogAppend(ctx context.Context, p store.LogAppendParams) (store.LogAppendResult, error) {
	if t.f.take("LogAppend") {
		return store.LogAppendResult{}, errFlaky
	}
	return t.LogTx.LogAppend(ctx, p)
}

func (t *flakyTx) FanoutMap(ctx context.Context, p store.FanoutMapParams) (store.FanoutMapResult, error) {
	if t.f.take("FanoutMap") {
		return store.FanoutMapResult{}, errFlaky
	}
	return t.Tx.FanoutMap(ctx, p)
}

func (t *flakyTx) FanoutRelease(ctx context.Context, p store.FanoutReleaseParams) (*store.Run, error) {
	if t.f.take("FanoutRelease") {
		return nil, errFlaky
	}
	return t.Tx.FanoutRelease(ctx, p)
}
