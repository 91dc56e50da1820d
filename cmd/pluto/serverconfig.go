package main

import (
	"io"
	"log/slog"
	"strings"

	"github.com/pluto-sched/pluto/internal/config"
	"github.com/pluto-sched/pluto/internal/engine"
	"github.com/pluto-sched/pluto/internal/server"
)

// serverConfig turns the merged settings into the server's Config.
func serverConfig(s config.Server) server.Config {
	cfg := server.Config{
		Store: s.Store, HTTPAddr: s.HTTP, GRPCAddr: s.GRPC, ServerID: s.ID,
		HeartbeatInterval: s.Heartbeat, MaxPayload: s.MaxPayload,
		StopTimeout: s.StopTimeout, StopWorkersOnExit: s.StopWorkersOnExit,
	}
	cfg.Engine.LeaseTTL = s.LeaseTTL
	cfg.Engine.RenewInterval = s.RenewInterval
	cfg.Engine.Standby = s.Standby
	cfg.Engine.MisfireGrace = s.MisfireGrace
	cfg.Engine.RetryBase = s.RetryBase
	cfg.Engine.RetryMax = s.RetryMax
	cfg.Engine.MaxLostAttempts = int(s.MaxLostAttempts)
	cfg.Engine.CallbackExpiry = s.CallbackExpiry
	cfg.Engine.CallbackAllow = splitList(s.CallbackAllow)
	cfg.Engine.Retention = retention(s)
	cfg.PprofAddr = s.Pprof
	cfg.Auth.AdminTokenFile = s.AdminTokenFile
	cfg.Auth.AllowedOrigins = splitList(s.AllowedOrigins)
	cfg.Auth.AllowedHosts = splitList(s.AllowedHosts)
	return cfg
}

// splitList splits a comma-separated setting, dropping empty entries.
func splitList(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// liveSettings is the live part of the settings.
func liveSettings(s config.Server) server.Live {
	return server.Live{
		HeartbeatInterval: s.Heartbeat, MaxPayload: s.MaxPayload, MisfireGrace: s.MisfireGrace,
		RetryBase: s.RetryBase, RetryMax: s.RetryMax, StopTimeout: s.StopTimeout,
		StopWorkersOnExit: s.StopWorkersOnExit, Retention: retention(s),
	}
}

// retention is the retention setting; config.Load validated it.
func retention(s config.Server) engine.Retention {
	r, err := engine.ParseRetention(s.Retention, engine.DefaultRetention)
	if err != nil {
		return engine.DefaultRetention // unreachable after Load
	}
	return r
}

// newLogger is the process logger (to w) at a level that can change live.
func newLogger(w io.Writer, format string, level *slog.LevelVar) *slog.Logger {
	hopts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, hopts))
	}
	return slog.New(slog.NewTextHandler(w, hopts))
}

// configReloaded, if set, sees every reload of the config file (tests).
var configReloaded func(config.ReloadResult)

// watchConfig reloads the config file when it changes and applies its
// live settings to srv and the log level; it returns the function that
// stops the watch.
func watchConfig(src config.Sources, running config.Server, srv *server.Server, level *slog.LevelVar, log *slog.Logger) (func(), error) {
	apply := func(s config.Server) error {
		if err := srv.Reconfigure(liveSettings(s)); err != nil {
			return err
		}
		lvl, err := config.ParseLevel(s.LogLevel)
		if err != nil {
			return err // Load validated it; kept for safety
		}
		level.Set(lvl)
		return nil
	}
	r := config.NewReloader(src, running, apply, log)
	r.OnReload = configReloaded
	w, err := config.Watch(src.File, config.DefaultDebounce, log, func() { r.Reload() })
	if err != nil {
		return nil, err
	}
	log.Info("watching the config file for live changes", "file", src.File)
	return w.Close, nil
}
