package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func tempConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pluto.yaml")
	writeFile(t, path, text)
	return path
}

// flags parses args with every key defined as a flag.
func flags(t *testing.T, args ...string) *pflag.FlagSet {
	t.Helper()
	f := pflag.NewFlagSet("server", pflag.ContinueOnError)
	AddFlags(f, Defaults())
	f.String("config", "", "")
	if err := f.Parse(args); err != nil {
		t.Fatal(err)
	}
	return f
}

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestConfigLoadDefaults(t *testing.T) {
	l, err := Load(Sources{Flags: flags(t), Getenv: env()})
	if err != nil {
		t.Fatal(err)
	}
	if l.Server != Defaults() || len(l.Origin) != 0 {
		t.Fatalf("got %+v from %v, want the defaults", l.Server, l.Origin)
	}
}

func TestConfigLoadPrecedence(t *testing.T) {
	path := tempConfig(t, `
store: sqlite:/from/file.db
http: 0.0.0.0:8080
heartbeat: 2s
max-payload: 2048
stop-workers-on-exit: true
log-level: debug
retry-max: 1d
id: 42
`)
	l, err := Load(Sources{
		File:   path,
		Getenv: env(EnvStore, "sqlite:/from/env.db"),
		Flags:  flags(t, "--heartbeat", "3s", "--config", path),
	})
	if err != nil {
		t.Fatal(err)
	}
	s := l.Server
	switch {
	case s.Store != "sqlite:/from/env.db": // env over file
		t.Errorf("store %q", s.Store)
	case s.HTTP != "0.0.0.0:8080" || s.MaxPayload != 2048 || !s.StopWorkersOnExit || s.LogLevel != "debug" || s.ID != "42":
		t.Errorf("file values not applied: %+v", s)
	case s.Heartbeat != 3*time.Second: // flag over file
		t.Errorf("heartbeat %v, want the flag's 3s", s.Heartbeat)
	case s.RetryMax != 24*time.Hour:
		t.Errorf("retry-max %v, want 24h", s.RetryMax)
	case s.GRPC != Defaults().GRPC:
		t.Errorf("grpc %q, want the default", s.GRPC)
	}
	if l.Origin["heartbeat"] != "--heartbeat" || l.Origin["store"] != EnvStore || l.Origin["http"] != path {
		t.Errorf("origins %v", l.Origin)
	}
	// A flag beats the environment too.
	l, err = Load(Sources{Getenv: env(EnvStore, "sqlite:/env.db"), Flags: flags(t, "--store", "sqlite:/flag.db")})
	if err != nil || l.Store != "sqlite:/flag.db" {
		t.Fatalf("store %q, %v; want the flag's", l.Store, err)
	}
}

func TestConfigLoadErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		args       []string
		want       []string
	}{
		{name: "unknown key", file: "hearbeat: 5s\n", want: []string{`key "hearbeat"`, "unknown key", "heartbeat"}},
		{name: "underscore", file: "lease_ttl: 5s\n", want: []string{`key "lease_ttl"`, `did you mean "lease-ttl"`}},
		{name: "nested", file: "log:\n  level: debug\n", want: []string{`key "log.level"`, "unknown key"}},
		{name: "bad duration", file: "heartbeat: 5x\n", want: []string{`key "heartbeat"`, `"5x"`}},
		{name: "number for a duration", file: "heartbeat: 5\n", want: []string{`key "heartbeat"`, "want a duration"}},
		{name: "list", file: "store: [a, b]\n", want: []string{`key "store"`, "a list"}},
		{name: "bad int", file: "max-payload: lots\n", want: []string{`key "max-payload"`, "whole number"}},
		{name: "bad bool", file: "standby: maybe\n", want: []string{`key "standby"`, "true or false"}},
		{name: "zero", file: "heartbeat: 0s\n", want: []string{`key "heartbeat"`, "must be positive"}},
		{name: "url", file: "http: http://x:1\n", want: []string{`key "http"`, "not a URL"}},
		{name: "renew", file: "renew-interval: 20s\n", want: []string{`key "renew-interval"`, "shorter than lease-ttl"}},
		{name: "retry", file: "retry-base: 1h\nretry-max: 1m\n", want: []string{`key "retry-base"`, "retry-max"}},
		{name: "level", file: "log-level: loud\n", want: []string{`key "log-level"`, `"loud"`}},
		{name: "format", file: "log-format: xml\n", want: []string{`key "log-format"`}},
		{name: "yaml", file: "heartbeat: [\n", want: []string{"pluto.yaml"}},
		{name: "flag", args: []string{"--heartbeat", "0s"}, want: []string{"invalid --heartbeat", "must be positive"}},
		{name: "retention status", file: "retention: done=1h\n", want: []string{`key "retention"`, `unknown status "done"`}},
		{name: "retention value", args: []string{"--retention", "failed=soon"}, want: []string{"invalid --retention", "failed", `"soon"`}},
		{name: "two at once", file: "heartbeat: 0s\nmax-payload: -1\n", want: []string{`key "heartbeat"`, `key "max-payload"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := Sources{Flags: flags(t, tc.args...)}
			if tc.file != "" {
				src.File = tempConfig(t, tc.file)
			}
			_, err := Load(src)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	_, err := Load(Sources{Flags: flags(t, "--max-payload", "0")})
	var ce *Error
	if !errors.As(err, &ce) || !ce.FromFlag() || ce.Key != "max-payload" {
		t.Fatalf("flag error %#v", err)
	}
	if _, err := Load(Sources{File: filepath.Join(t.TempDir(), "missing.yaml")}); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Fatalf("missing file: %v", err)
	}
}

func TestConfigDiff(t *testing.T) {
	a := Defaults()
	b := a
	b.Heartbeat, b.Store, b.LogLevel = time.Second, "sqlite:/other.db", "debug"
	got := Diff(a, b)
	want := map[string]bool{"store": false, "heartbeat": true, "log-level": true}
	if len(got) != len(want) {
		t.Fatalf("diff %+v", got)
	}
	for _, c := range got {
		if live, ok := want[c.Key]; !ok || live != c.Live {
			t.Errorf("change %+v", c)
		}
	}
}

func TestConfigEveryKeyHasAFlagAndTheExampleDocumentsIt(t *testing.T) {
	f := flags(t)
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", "pluto.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	example := string(b)
	for _, k := range Keys {
		if f.Lookup(k.Name) == nil {
			t.Errorf("key %s has no flag", k.Name)
		}
		if !strings.Contains(example, "\n"+k.Name+":") && !strings.Contains(example, "\n# "+k.Name+":") {
			t.Errorf("examples/pluto.yaml does not document %s", k.Name)
		}
	}
	// The example itself is valid.
	if _, err := Load(Sources{File: filepath.Join("..", "..", "examples", "pluto.yaml")}); err != nil {
		t.Fatalf("examples/pluto.yaml: %v", err)
	}
}
