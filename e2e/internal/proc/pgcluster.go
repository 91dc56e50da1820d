package proc

import (
	"context"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PGCluster is the local PostgreSQL cluster (Debian's postgresql-common:
// pg_lsclusters, pg_ctlcluster) that serves the tests' PostgreSQL, for a
// test that stops or restarts it.
type PGCluster struct {
	t       *testing.T
	Version string // "15"
	Name    string // "main"
	base    string // the URL it serves
}

// LocalPGCluster finds the cluster listening on the port of PGBase. A test
// that cannot control it (PostgreSQL elsewhere, no pg_ctlcluster, not
// allowed) fails under CI and is skipped elsewhere (Unavailable). The
// cluster is running again when the test ends: a cleanup starts it if the
// test left it down, since other tests share it.
func LocalPGCluster(t *testing.T) *PGCluster {
	t.Helper()
	base := PGBase()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("PLUTO_TEST_POSTGRES %q: %v", base, err)
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "5432"
	}
	if host != "127.0.0.1" && host != "localhost" && host != "::1" {
		Unavailable(t, "PostgreSQL at %s is not on this host: cannot restart it", host)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "pg_lsclusters", "--no-header").Output()
	if err != nil {
		Unavailable(t, "pg_lsclusters: %v (a test that restarts PostgreSQL needs postgresql-common)", err)
	}
	// Ver Cluster Port Status Owner Data-directory Log-file
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && f[2] == port {
			c := &PGCluster{t: t, Version: f[0], Name: f[1], base: base}
			t.Cleanup(c.ensureUp)
			return c
		}
	}
	Unavailable(t, "no local PostgreSQL cluster on port %s (pg_lsclusters: %q)", port, strings.TrimSpace(string(out)))
	return nil
}

// Ctl runs pg_ctlcluster VERSION NAME action (plus args), bounded by d.
func (c *PGCluster) Ctl(d time.Duration, action string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	argv := append([]string{"--skip-systemctl-redirect", c.Version, c.Name, action}, args...)
	out, err := exec.CommandContext(ctx, "pg_ctlcluster", argv...).CombinedOutput()
	if err != nil {
		return &ctlError{argv: argv, err: err, out: strings.TrimSpace(string(out))}
	}
	return nil
}

type ctlError struct {
	argv []string
	err  error
	out  string
}

func (e *ctlError) Error() string {
	return "pg_ctlcluster " + strings.Join(e.argv, " ") + ": " + e.err.Error() + ": " + e.out
}

// Up reports whether PostgreSQL accepts a connection and a query within d.
func (c *PGCluster) Up(d time.Duration) bool { return pgUp(c.base, d) }

func pgUp(base string, d time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return false
	}
	defer conn.Close(context.Background())
	var one int
	return conn.QueryRow(ctx, "SELECT 1").Scan(&one) == nil
}

// ensureUp starts the cluster if it is down, and waits until it answers.
func (c *PGCluster) ensureUp() {
	if c.Up(2 * time.Second) {
		return
	}
	c.t.Logf("PostgreSQL %s/%s is down at the end of the test: starting it", c.Version, c.Name)
	if err := c.Ctl(time.Minute, "start"); err != nil {
		c.t.Errorf("starting PostgreSQL again: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !c.Up(2 * time.Second) {
		if time.Now().After(deadline) {
			c.t.Errorf("PostgreSQL %s/%s does not answer 30 s after the test started it", c.Version, c.Name)
			return
		}
		time.Sleep(200 * time.Millisecond) // polling another process
	}
}

// PGOutage is what a PGProbe saw: when PostgreSQL first did not answer,
// and when it first answered again after that (zero if it did not).
type PGOutage struct {
	Down, Back time.Time
}

// PGProbe watches whether PostgreSQL answers.
type PGProbe struct {
	quit chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	o    PGOutage
}

// Probe connects to the cluster every interval (each attempt bounded by a
// second) until Stop, recording the first outage it sees: Down is when
// the first failed attempt began, Back when the first successful one
// after it began (its connection was accepted at once: an attempt may
// take tens of milliseconds on a loaded machine, in which the servers
// under test may already have reconnected and committed).
func (c *PGCluster) Probe(interval time.Duration) *PGProbe {
	p := &PGProbe{quit: make(chan struct{})}
	p.wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			at := time.Now()
			up := pgUp(c.base, time.Second)
			p.mu.Lock()
			switch {
			case !up && p.o.Down.IsZero():
				p.o.Down = at
			case up && !p.o.Down.IsZero() && p.o.Back.IsZero():
				p.o.Back = at
			}
			p.mu.Unlock()
			select {
			case <-p.quit:
				return
			case <-t.C:
			}
		}
	})
	return p
}

// Outage is the outage seen so far.
func (p *PGProbe) Outage() PGOutage {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.o
}

// Stop ends the probe and returns the outage it saw.
func (p *PGProbe) Stop() PGOutage {
	select {
	case <-p.quit:
	default:
		close(p.quit)
	}
	p.wg.Wait()
	return p.Outage()
}
