package auth

import (
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
	"github.com/pluto-sched/pluto/internal/store/sqlite"
)

func openStore(t *testing.T) store.Store {
	t.Helper()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"), sqlite.Options{Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func auditOf(t *testing.T, s store.Store) []string {
	t.Helper()
	page, err := s.AuditList(ctx, store.AuditListParams{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range page.Entries {
		out = append(out, e.Actor+" "+e.Action+" "+e.Target+" "+e.Outcome)
	}
	return out
}

func TestCreateAndRevoke(t *testing.T) {
	s := openStore(t)
	c := &fakeClock{t: t0}
	v := NewVerifier(s, VerifierOptions{Now: c.Now})
	secret, tok, err := CreateToken(ctx, s, CreateParams{
		Name: "ci", Role: RoleClient, Groups: []string{"deploy", "build"}, Actor: "root", Now: t0,
	})
	if err != nil {
		t.Fatal(err)
	}
	if tok.Hash != HashSecret(secret) || tok.Role != "client" || strings.Join(tok.Groups, ",") != "build,deploy" {
		t.Errorf("stored token %+v", tok)
	}
	p, err := v.Verify(ctx, secret)
	if err != nil || p.Name != "ci" || !p.AllowsGroup("build") || p.AllowsGroup("x") {
		t.Fatalf("Verify = %+v, %v", p, err)
	}
	_, _, err = CreateToken(ctx, s, CreateParams{Name: "ci", Role: RoleViewer, Now: t0})
	if !errors.Is(err, store.ErrExists) {
		t.Errorf("CreateToken of a taken name: %v", err)
	}
	if _, err := RevokeToken(ctx, s, "root", "ci", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	v.Invalidate("ci") // what the TopicTokens notification does
	if _, err := v.Verify(ctx, secret); !errors.Is(err, ErrRevoked) {
		t.Errorf("Verify after revoke: %v", err)
	}
	if _, err := RevokeToken(ctx, s, "root", "nope", t0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RevokeToken of an unknown name: %v", err)
	}
	want := []string{"root token.revoke ci ok", "root token.create ci ok"}
	if got := auditOf(t, s); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("audit %q, want %q", got, want)
	}
}

func TestCreateValidates(t *testing.T) {
	s := openStore(t)
	for field, p := range map[string]CreateParams{
		"name":       {Name: "a b", Role: RoleAdmin, Now: t0},
		"role":       {Name: "a", Role: "Admin", Now: t0},
		"groups":     {Name: "a", Role: RoleAdmin, Groups: []string{""}, Now: t0},
		"expires_at": {Name: "a", Role: RoleAdmin, ExpiresAt: t0, Now: t0},
	} {
		_, _, err := CreateToken(ctx, s, p)
		if err == nil || !strings.HasPrefix(err.Error(), field) {
			t.Errorf("CreateToken with a bad %s: %v", field, err)
		}
	}
	if n, _ := s.TokenCount(ctx); n != 0 {
		t.Errorf("%d tokens stored by refused creates", n)
	}
}

func TestBootstrap(t *testing.T) {
	s := openStore(t)
	const n = 4
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		secrets []string
	)
	for range n {
		wg.Go(func() {
			secret, created, err := Bootstrap(ctx, s, "admin", t0)
			if err != nil {
				t.Error(err)
				return
			}
			if created {
				mu.Lock()
				secrets = append(secrets, secret)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(secrets) != 1 {
		t.Fatalf("%d bootstraps created a token, want 1", len(secrets))
	}
	p, err := NewVerifier(s, VerifierOptions{}).Verify(ctx, secrets[0])
	if err != nil || p.Role != RoleAdmin || !p.Allows(PermTokenAdmin) {
		t.Errorf("bootstrap token: %+v, %v", p, err)
	}
	if got := auditOf(t, s); len(got) != 1 || got[0] != "bootstrap token.bootstrap admin ok" {
		t.Errorf("audit %q", got)
	}
}

func TestPruneAudit(t *testing.T) {
	s := openStore(t)
	var es []store.AuditEntry
	for i := range 25 {
		es = append(es, store.AuditEntry{At: t0.Add(time.Duration(i) * time.Hour), Actor: "a", Action: "run.cancel", Outcome: OutcomeOK})
	}
	if err := s.Tx(ctx, func(tx store.Tx) error { return tx.AuditAppend(ctx, es) }); err != nil {
		t.Fatal(err)
	}
	n, err := PruneAudit(ctx, s, t0.Add(20*time.Hour), 3)
	if err != nil || n != 20 {
		t.Errorf("PruneAudit = %d, %v; want 20", n, err)
	}
	if got := auditOf(t, s); len(got) != 5 {
		t.Errorf("%d entries left, want 5", len(got))
	}
}
