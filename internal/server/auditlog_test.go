package server

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/internal/auth"
	"github.com/pluto-sched/pluto/internal/store"
)

// outageStore refuses write transactions until a time.
type outageStore struct {
	store.Store
	until time.Time
	calls atomic.Int64
}

func (s *outageStore) Tx(ctx context.Context, fn func(store.Tx) error) error {
	s.calls.Add(1)
	if time.Now().Before(s.until) {
		return errors.New("database is locked (test)")
	}
	return s.Store.Tx(ctx, fn)
}

// Entries recorded while the store refuses writes are kept and written
// once it takes them, and the refusals are retried with backoff — not
// once per entry added meanwhile.
func TestAuditLogSurvivesAnOutage(t *testing.T) {
	inner, err := OpenStore(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "pluto.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	st := &outageStore{Store: inner, until: time.Now().Add(2 * time.Second)}
	a := newAuditLog(st, slog.New(slog.DiscardHandler), 0)
	p := &auth.Principal{Name: "ops"}
	for range 200 {
		a.record(p, "run.cancel", "r1", 200, "")
		time.Sleep(time.Millisecond)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		page, err := inner.AuditList(context.Background(), store.AuditListParams{Actor: "ops", Limit: 1000})
		if err == nil && len(page.Entries) == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 200 entries written after the outage (err %v)", len(page.Entries), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	a.close()
	if n := st.calls.Load(); n > 30 {
		t.Fatalf("%d transactions for 200 entries and a 2 s outage: retries do not back off", n)
	}
}
