package config

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// reloadEnv watches a config file with a Reloader whose results arrive on
// a channel.
type reloadEnv struct {
	t       *testing.T
	path    string
	r       *Reloader
	results chan ReloadResult
	applied chan Server
	fail    atomic.Bool // apply fails while set
}

func newReloadEnv(t *testing.T, initial string, args ...string) *reloadEnv {
	t.Helper()
	re := &reloadEnv{t: t, path: tempConfig(t, initial), results: make(chan ReloadResult, 16), applied: make(chan Server, 16)}
	src := Sources{File: re.path, Flags: flags(t, args...)}
	l, err := Load(src)
	if err != nil {
		t.Fatal(err)
	}
	re.r = NewReloader(src, l.Server, func(s Server) error {
		if re.fail.Load() {
			return errors.New("engine says no")
		}
		re.applied <- s
		return nil
	}, slog.New(slog.DiscardHandler))
	re.r.OnReload = func(res ReloadResult) { re.results <- res }
	w, err := Watch(re.path, 20*time.Millisecond, nil, func() { re.r.Reload() })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return re
}

// next waits at most a second for the next reload.
func (re *reloadEnv) next() ReloadResult {
	re.t.Helper()
	select {
	case res := <-re.results:
		return res
	case <-time.After(time.Second):
		re.t.Fatal("no reload within a second of the change")
		return ReloadResult{}
	}
}

func keys(cs []Change) string {
	var ks []string
	for _, c := range cs {
		ks = append(ks, c.Key)
	}
	return strings.Join(ks, ",")
}

func TestReloadAppliesLiveChangesWithinASecond(t *testing.T) {
	re := newReloadEnv(t, "heartbeat: 5s\nlog-level: info\n")
	writeFile(t, re.path, "heartbeat: 2s\nlog-level: debug\n")
	res := re.next()
	if res.Err != nil || keys(res.Applied) != "heartbeat,log-level" {
		t.Fatalf("reload %+v", res)
	}
	if s := <-re.applied; s.Heartbeat != 2*time.Second || s.LogLevel != "debug" {
		t.Fatalf("applied %+v", s)
	}
	if cur := re.r.Current(); cur.Heartbeat != 2*time.Second {
		t.Fatalf("current %+v", cur)
	}
}

// Editors that save by writing a temporary file and renaming it over the
// original are seen too.
func TestReloadSeesReplaceByRename(t *testing.T) {
	re := newReloadEnv(t, "max-payload: 1000\n")
	tmp := filepath.Join(filepath.Dir(re.path), ".pluto.yaml.swp")
	writeFile(t, tmp, "max-payload: 2000\n")
	if err := os.Rename(tmp, re.path); err != nil {
		t.Fatal(err)
	}
	if res := re.next(); res.Err != nil || keys(res.Applied) != "max-payload" {
		t.Fatalf("reload %+v", res)
	}
	// And again: the watch survives the replacement.
	writeFile(t, tmp, "max-payload: 3000\n")
	if err := os.Rename(tmp, re.path); err != nil {
		t.Fatal(err)
	}
	if res := re.next(); res.Err != nil || len(res.Applied) != 1 || res.Applied[0].New != "3000" {
		t.Fatalf("second reload %+v", res)
	}
}

// A burst of writes is read once it is over: the first reload already
// sees the last write.
func TestReloadDebouncesBursts(t *testing.T) {
	re := newReloadEnv(t, "retry-base: 1s\n")
	for i := 2; i <= 9; i++ {
		writeFile(t, re.path, "retry-base: "+string(rune('0'+i))+"s\n")
	}
	res := re.next()
	if res.Err != nil || len(res.Applied) != 1 || res.Applied[0].New != "9s" {
		t.Fatalf("first reload after the burst %+v, want retry-base 9s", res)
	}
}

// An invalid file keeps the running configuration and says why, naming
// the key; fixing the file applies it.
func TestReloadInvalidFileKeepsConfig(t *testing.T) {
	re := newReloadEnv(t, "heartbeat: 5s\n")
	writeFile(t, re.path, "heartbeat: soon\n")
	res := re.next()
	if res.Err == nil || !strings.Contains(res.Err.Error(), `key "heartbeat"`) || len(res.Applied) != 0 {
		t.Fatalf("invalid file: %+v", res)
	}
	writeFile(t, re.path, "heartbeat: 5s\nmystery: 1\n")
	if res := re.next(); res.Err == nil || !strings.Contains(res.Err.Error(), `key "mystery"`) {
		t.Fatalf("unknown key: %+v", res)
	}
	if cur := re.r.Current(); cur.Heartbeat != 5*time.Second {
		t.Fatalf("current %+v", cur)
	}
	// The apply itself may refuse: nothing changes either.
	re.fail.Store(true)
	writeFile(t, re.path, "heartbeat: 7s\n")
	if res := re.next(); res.Err == nil || len(res.Applied) != 0 {
		t.Fatalf("refused apply: %+v", res)
	}
	if cur := re.r.Current(); cur.Heartbeat != 5*time.Second {
		t.Fatalf("current after a refused apply %+v", cur)
	}
}

// Settings that cannot change live keep their running value; flags given
// on the command line keep winning over the file.
func TestReloadRestartOnlyAndFlags(t *testing.T) {
	re := newReloadEnv(t, "store: sqlite:/a.db\nheartbeat: 5s\n", "--max-payload", "100")
	writeFile(t, re.path, "store: sqlite:/b.db\nheartbeat: 1s\nmax-payload: 999\n")
	res := re.next()
	if res.Err != nil || keys(res.Restart) != "store" || keys(res.Applied) != "heartbeat" {
		t.Fatalf("reload %+v", res)
	}
	cur := re.r.Current()
	if cur.Store != "sqlite:/a.db" || cur.Heartbeat != time.Second || cur.MaxPayload != 100 {
		t.Fatalf("current %+v: want the running store, the new heartbeat, the flag's max-payload", cur)
	}
}

// A file removed and created again is watched again.
func TestReloadFileRemovedAndRecreated(t *testing.T) {
	re := newReloadEnv(t, "misfire-grace: 5s\n")
	if err := os.Remove(re.path); err != nil {
		t.Fatal(err)
	}
	if res := re.next(); res.Err == nil || !errors.Is(res.Err, os.ErrNotExist) {
		t.Fatalf("after removal: %+v, want a missing-file error", res)
	}
	writeFile(t, re.path, "misfire-grace: 9s\n")
	res := re.next()
	for res.Err != nil { // an empty file caught between create and write
		res = re.next()
	}
	if keys(res.Applied) != "misfire-grace" {
		t.Fatalf("after re-creation: %+v", res)
	}
	writeFile(t, re.path, "misfire-grace: 10s\n")
	if res := re.next(); res.Err != nil || len(res.Applied) != 1 || res.Applied[0].New != "10s" {
		t.Fatalf("write after re-creation: %+v", res)
	}
}
