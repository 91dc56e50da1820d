package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/pluto-sched/pluto/internal/config"
)

// TestServerConfigFileReload runs pluto server --config in-process, edits
// the file and sees the live keys applied within a second, the others
// logged as needing a restart, an invalid edit refused with the key named,
// and a flag keep winning over the file.
func TestServerConfigFileReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pluto.yaml")
	base := "store: sqlite:" + filepath.Join(dir, "pluto.db") + "\nhttp: 127.0.0.1:0\ngrpc: 127.0.0.1:0\n"
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(base+text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("heartbeat: 5s\nlog-level: info\nmax-payload: 1000\n")
	reloads := make(chan config.ReloadResult, 16)
	configReloaded = func(r config.ReloadResult) { reloads <- r }
	t.Cleanup(func() { configReloaded = nil })
	next := func() config.ReloadResult {
		t.Helper()
		select {
		case r := <-reloads:
			return r
		case <-time.After(time.Second):
			t.Fatal("no reload within a second of the change")
			return config.ReloadResult{}
		}
	}

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	out, errb, done := startCLI(t, ctx, "server", "--config", path, "--max-payload", "2000")
	waitFor(t, out, errb, done, regexp.MustCompile(`API (http://\S+)/api/v1`))
	if !strings.Contains(errb.String(), "watching the config file") {
		t.Fatalf("no watch:\n%s", errb)
	}

	write("heartbeat: 2s\nlog-level: debug\nmax-payload: 9999\nlease-ttl: 20s\nretention: failed=1h\n")
	r := next()
	if r.Err != nil || names(r.Applied) != "heartbeat,log-level,retention" || names(r.Restart) != "lease-ttl" {
		t.Fatalf("reload %+v (max-payload is set by a flag and must not change)", r)
	}
	if !strings.Contains(errb.String(), "needs a restart") {
		t.Errorf("no restart warning:\n%s", errb)
	}

	write("heartbeat: never\n")
	if r := next(); r.Err == nil || !strings.Contains(r.Err.Error(), `key "heartbeat"`) {
		t.Fatalf("invalid file: %+v", r)
	}
	if !strings.Contains(errb.String(), "config file invalid; keeping the running configuration") {
		t.Errorf("invalid file not logged:\n%s", errb)
	}

	stop()
	waitExit(t, "server", done, errb)
}

func names(cs []config.Change) string {
	var ks []string
	for _, c := range cs {
		ks = append(ks, c.Key)
	}
	return strings.Join(ks, ",")
}

func TestServerConfigFileErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pluto.yaml")
	if err := os.WriteFile(path, []byte("hearbeat: 5s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, nil, "server", "--config", path)
	if r.code != 2 || !strings.Contains(r.stderr, `key "hearbeat"`) || !strings.Contains(r.stderr, "unknown key") {
		t.Fatalf("unknown key: exit %d, stderr %q", r.code, r.stderr)
	}
	r = runCLI(t, nil, "server", "--config", filepath.Join(dir, "missing.yaml"))
	if r.code != 2 || !strings.Contains(r.stderr, "missing.yaml") {
		t.Fatalf("missing file: exit %d, stderr %q", r.code, r.stderr)
	}
	r = runCLI(t, nil, "server", "--retention", "succeeded=30s,finished=1h")
	if r.code != 2 || !strings.Contains(r.stderr, "--retention") || !strings.Contains(r.stderr, `"finished"`) {
		t.Fatalf("bad retention: exit %d, stderr %q", r.code, r.stderr)
	}
	r = runCLI(t, nil, "server", "--stop-timeout", "0s")
	if r.code != 2 || !strings.Contains(r.stderr, "--stop-timeout") {
		t.Fatalf("bad flag: exit %d, stderr %q", r.code, r.stderr)
	}
}

// Every server flag is a config key (so it can be given in the file),
// except --config itself and --help.
func TestEveryServerFlagIsAConfigKey(t *testing.T) {
	a := newApp(strings.NewReader(""), &syncBuffer{}, &syncBuffer{}, func(string) string { return "" })
	cmd := a.newServerCmd()
	keys := map[string]bool{}
	for _, k := range config.Keys {
		keys[k.Name] = true
	}
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Name != "config" && f.Name != "help" && !keys[f.Name] {
			t.Errorf("flag --%s has no config key", f.Name)
		}
	})
}
