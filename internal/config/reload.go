package config

import (
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// Reloader keeps the settings a server runs with and applies changes of
// its configuration file: live keys are handed to the apply function;
// the others are logged as needing a restart and keep their running
// value; an invalid file changes nothing and the log says why (naming the
// key). Flags given on the command line and the environment still win
// over the file, as at start.
type Reloader struct {
	src   Sources
	apply func(Server) error
	log   *slog.Logger

	mu      sync.Mutex
	current Server

	// OnReload, if set, is called after every reload attempt (tests).
	OnReload func(ReloadResult)
}

// ReloadResult is what one reload did.
type ReloadResult struct {
	Applied []Change // live changes now in force
	Restart []Change // changes that need a restart (not applied)
	Err     error    // the file was invalid or the apply failed: nothing changed
}

// NewReloader returns a Reloader for a server started with running, whose
// live settings apply changes (it receives the whole new configuration,
// with the restart-only keys at their running values).
func NewReloader(src Sources, running Server, apply func(Server) error, log *slog.Logger) *Reloader {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Reloader{src: src, apply: apply, log: log, current: running}
}

// Current returns the settings in force.
func (r *Reloader) Current() Server {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.current
}

// Reload reads the sources again and applies what changed.
func (r *Reloader) Reload() ReloadResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := r.reload()
	if r.OnReload != nil {
		r.OnReload(res)
	}
	return res
}

func (r *Reloader) reload() ReloadResult {
	var res ReloadResult
	if fi, err := os.Stat(r.src.File); err == nil && fi.Size() == 0 {
		// Most likely caught between a truncate and the write that
		// follows; the write triggers another reload.
		res.Err = fmt.Errorf("config file %s is empty", r.src.File)
		r.log.Warn("config file is empty; keeping the running configuration", "file", r.src.File)
		return res
	}
	loaded, err := Load(r.src)
	if err != nil {
		res.Err = err
		r.log.Error("config file invalid; keeping the running configuration", "file", r.src.File, "err", err)
		return res
	}
	next := loaded.Server
	for _, c := range Diff(r.current, next) {
		if c.Live {
			res.Applied = append(res.Applied, c)
			continue
		}
		res.Restart = append(res.Restart, c)
		k, _ := key(c.Key)
		copyField(k, &next, &r.current)
		r.log.Warn("config change needs a restart; keeping the running value", "key", c.Key, "running", c.Old, "file", c.New)
	}
	if len(res.Applied) == 0 {
		return res
	}
	if err := r.apply(next); err != nil {
		res.Err = err
		res.Applied = nil
		r.log.Error("config change refused; keeping the running configuration", "file", r.src.File, "err", err)
		return res
	}
	r.current = next
	for _, c := range res.Applied {
		r.log.Info("config reloaded", "key", c.Key, "old", c.Old, "new", c.New)
	}
	return res
}

// copyField sets k's field of dst to its value in src.
func copyField(k Key, dst, src *Server) {
	switch p := k.field(dst).(type) {
	case *string:
		*p = *k.field(src).(*string)
	case *int64:
		*p = *k.field(src).(*int64)
	case *bool:
		*p = *k.field(src).(*bool)
	case *time.Duration:
		*p = *k.field(src).(*time.Duration)
	}
}
