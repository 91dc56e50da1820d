package main

import (
	"path/filepath"
	"testing"
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
