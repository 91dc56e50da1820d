package server

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pluto-sched/pluto/internal/auth"
	"github.com/pluto-sched/pluto/internal/store"
)

// AuthConfig configures authentication (docs/security.md).
type AuthConfig struct {
	// Disabled lets every call through as an unlimited admin. For tests of
	// other parts and for measuring auth's cost; no flag turns it on.
	Disabled bool
	// AdminTokenFile, if set, is where the admin token created on the
	// first start against an empty store is written (mode 0600).
	AdminTokenFile string
	// BootstrapOut is where that token is printed once ("admin token:
	// plt_…"; default os.Stderr).
	BootstrapOut io.Writer
	// DevTokenFile (pluto dev) is a file that must hold a working admin
	// token after start: kept if it does, otherwise a new admin token is
	// created (on an empty store: the bootstrap one) and written there.
	DevTokenFile string
	// AllowedOrigins and AllowedHosts widen the browser checks
	// (httpguard.go).
	AllowedOrigins []string
	AllowedHosts   []string
	// AuditRetention is how long audit entries are kept (default 90 days).
	AuditRetention time.Duration
}

// security is the server's authentication state.
type security struct {
	authn  *authenticator // nil when disabled
	tokens *tokenAdmin    // nil when disabled
	audit  *auditLog      // nil when disabled
	// revoked, if set, ends what a revoked token holds open (worker
	// streams); name "" means any token.
	revoked func(name string)
}

// setupAuth creates the verifier, the admin token of a new store, and
// the audit log.
func (s *Server) setupAuth(ctx context.Context) (*security, error) {
	ac := s.cfg.Auth
	if ac.Disabled {
		s.log.Warn("authentication is off: every call is an admin's")
		return &security{}, nil
	}
	v := auth.NewVerifier(s.store, auth.VerifierOptions{})
	if err := s.bootstrapToken(ctx, v); err != nil {
		return nil, err
	}
	return &security{
		authn:  &authenticator{v: v},
		tokens: &tokenAdmin{st: s.store, v: v},
		audit:  newAuditLog(s.store, s.log, ac.AuditRetention),
	}, nil
}

// bootstrapToken creates the first admin token on an empty store and
// shows it once: printed, and written to AdminTokenFile when set. Several
// servers starting on one empty store race safely: one creates it.
func (s *Server) bootstrapToken(ctx context.Context, v *auth.Verifier) error {
	ac := s.cfg.Auth
	if ac.DevTokenFile != "" && s.devTokenWorks(ctx, v, ac.DevTokenFile) {
		return nil
	}
	now := time.Now()
	secret, created, err := auth.Bootstrap(ctx, s.store, "admin", now)
	if err != nil {
		return fmt.Errorf("server: bootstrap admin token: %w", err)
	}
	if !created && ac.DevTokenFile != "" {
		// The store has tokens but the file's is gone or revoked: a dev
		// server makes itself a new one, named for when.
		name := "dev-" + now.UTC().Format("20060102-150405.000")
		name = strings.ReplaceAll(name, ".", "-")
		secret, _, err = auth.CreateToken(ctx, s.store, auth.CreateParams{Name: name, Role: auth.RoleAdmin, Actor: "pluto-dev", Now: now})
		if err != nil {
			return fmt.Errorf("server: dev admin token: %w", err)
		}
		created = true
	}
	if !created {
		return nil
	}
	for _, path := range []string{ac.AdminTokenFile, ac.DevTokenFile} {
		if path == "" {
			continue
		}
		if err := writeTokenFile(path, secret); err != nil {
			return err
		}
		s.log.Info("admin token written", "file", path)
	}
	out := ac.BootstrapOut
	if out == nil {
		out = os.Stderr
	}
	if ac.DevTokenFile == "" {
		_, _ = fmt.Fprintf(out, "admin token: %s\n(shown once: keep it; pluto token create makes more)\n", secret)
	}
	return nil
}

// devTokenWorks reports whether path holds a token that verifies as an
// admin's.
func (s *Server) devTokenWorks(ctx context.Context, v *auth.Verifier, path string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	p, err := v.Verify(ctx, strings.TrimSpace(string(b)))
	return err == nil && p.Allows(auth.PermTokenAdmin)
}

// writeTokenFile writes a secret readable by its owner only.
func writeTokenFile(path, secret string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("server: admin token file: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(secret+"\n"), 0o600); err != nil {
		return fmt.Errorf("server: admin token file: %w", err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil { // an existing tmp kept its mode
		return fmt.Errorf("server: admin token file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("server: admin token file: %w", err)
	}
	return nil
}

// notified passes the store's notifications to the verifier (a token
// revoked on another server is refused here at once).
func (sec *security) notified(n store.Notification) {
	if sec.authn != nil && n.Topic == store.TopicTokens {
		sec.authn.v.Notify(n)
		if sec.revoked != nil {
			sec.revoked(n.Payload)
		}
	}
}

// relistened forgets every cached verification: revocations announced
// while the notification connection was down were missed.
func (sec *security) relistened() {
	if sec.authn != nil {
		sec.authn.v.InvalidateAll()
	}
}

func (sec *security) close() {
	sec.audit.close()
}
