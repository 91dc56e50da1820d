package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pluto-sched/pluto/internal/executor"
	"github.com/pluto-sched/pluto/worker"
)

func TestDefaultResultDir(t *testing.T) {
	tests := []struct {
		env  map[string]string
		id   string
		want string
	}{
		{map[string]string{"XDG_STATE_HOME": "/state", "HOME": "/home/u"}, "w1", "/state/pluto/worker-w1"},
		{map[string]string{"XDG_STATE_HOME": "relative", "HOME": "/home/u"}, "w1", "/home/u/.local/state/pluto/worker-w1"},
		{map[string]string{"HOME": "/home/u"}, "../a b/é", "/home/u/.local/state/pluto/worker-.._a_b__"},
		{map[string]string{}, "w1", ""},
		{map[string]string{"HOME": "."}, "w1", ""},
	}
	for _, tt := range tests {
		got := defaultResultDir(func(k string) string { return tt.env[k] }, tt.id)
		if got != filepath.FromSlash(tt.want) {
			t.Errorf("env %v, id %q: %q, want %q", tt.env, tt.id, got, tt.want)
		}
	}
}

func TestBuiltinHandlersFlags(t *testing.T) {
	for _, tt := range []struct {
		h         builtinHandlers
		httpAllow []string
		types     string
		err       string
	}{
		{builtinHandlers{}, nil, "noop", ""},
		{builtinHandlers{shell: true}, nil, "noop,shell", ""},
		{builtinHandlers{http: true}, nil, "http,noop", ""},
		{builtinHandlers{http: true}, []string{"10.0.0.0/8", "*.internal"}, "http,noop", ""},
		{builtinHandlers{}, []string{"10.0.0.0/8"}, "", "--http-allow needs --http"},
		{builtinHandlers{shellInheritEnv: true}, nil, "", "--shell-inherit-env needs --shell"},
		{builtinHandlers{http: true}, []string{"10.0.0.0/99"}, "", "invalid --http-allow"},
	} {
		h := tt.h
		err := h.configure(tt.httpAllow)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%+v %v: %v, want %q", tt.h, tt.httpAllow, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		types := h.mux().Types()
		slices.Sort(types)
		if got := strings.Join(types, ","); got != tt.types {
			t.Errorf("%+v: handlers %s, want %s", tt.h, got, tt.types)
		}
	}
}

// TestShellInheritEnvFlag: a secret in the worker's environment reaches a
// shell run only with --shell-inherit-env.
func TestShellInheritEnvFlag(t *testing.T) {
	t.Setenv("PLUTO_TEST_WORKER_SECRET", "s3cret")
	for _, inherit := range []bool{false, true} {
		r := worker.NewTestRun(worker.TestRun{Type: executor.TypeShell, Payload: json.RawMessage(`{"cmd":"echo \"[$PLUTO_TEST_WORKER_SECRET]\""}`)})
		if err := (builtinHandlers{shell: true, shellInheritEnv: inherit}).mux().ProcessRun(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		var res executor.ShellResult
		if err := json.Unmarshal(r.Result(), &res); err != nil {
			t.Fatal(err)
		}
		want := "[]\n"
		if inherit {
			want = "[s3cret]\n"
		}
		if res.Stdout != want {
			t.Errorf("--shell-inherit-env=%v: stdout %q, want %q", inherit, res.Stdout, want)
		}
	}
}
