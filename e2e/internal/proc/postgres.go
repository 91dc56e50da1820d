package proc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PGURL returns the URL of a fresh PostgreSQL schema for one test (dropped
// afterwards). Without a reachable PostgreSQL the test fails in CI and is
// skipped, loudly, elsewhere.
func PGURL(t *testing.T) string {
	t.Helper()
	base := os.Getenv("PLUTO_TEST_POSTGRES")
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("PostgreSQL unreachable at %s (CI must run the PostgreSQL tests): %v", base, err)
		}
		fmt.Fprintf(os.Stderr, "\n*** PostgreSQL unreachable at %s: SKIPPING %s ***\n\n", base, t.Name())
		t.Skipf("PostgreSQL unreachable at %s: %v", base, err)
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
