package proc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PGBase is the PostgreSQL the tests use: PLUTO_TEST_POSTGRES, by default
// postgres://postgres@127.0.0.1:5432/test.
func PGBase() string {
	if base := os.Getenv("PLUTO_TEST_POSTGRES"); base != "" {
		return base
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// PGURL returns the URL of a fresh PostgreSQL schema for one test (dropped
// afterwards). Without a reachable PostgreSQL the test fails in CI and is
// skipped, loudly, elsewhere.
func PGURL(t *testing.T) string {
	t.Helper()
	base := PGBase()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		Unavailable(t, "PostgreSQL unreachable at %s: %v", base, err)
	}
	conn.Close(ctx)
	b := make([]byte, 6)
	rand.Read(b)
	schema := "e2e_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(ctx, base); err == nil {
			conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
			conn.Close(ctx)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("schema", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
