// Package config holds the settings of `pluto server`: their defaults, a
// YAML configuration file read with koanf, the environment and the
// command-line flags, merged in that order (a later source wins), and the
// watch that reloads the file while the server runs (watch.go).
//
// A file key is the flag's name without the dashes: `heartbeat: 5s` in the
// file is `--heartbeat 5s` on the command line. Every key is listed in
// Keys, with whether it can change while the server runs (Live).
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/pflag"

	"github.com/pluto-sched/pluto/internal/dur"
	"github.com/pluto-sched/pluto/internal/engine"
)

// Server is every setting of `pluto server`.
type Server struct {
	Store             string
	HTTP              string
	GRPC              string
	ID                string
	Heartbeat         time.Duration
	MaxPayload        int64
	StopTimeout       time.Duration
	StopWorkersOnExit bool
	LeaseTTL          time.Duration
	RenewInterval     time.Duration
	Standby           bool
	CompletionLog     string
	LogLevel          string
	LogFormat         string
	MisfireGrace      time.Duration
	RetryBase         time.Duration
	RetryMax          time.Duration
	MaxLostAttempts   int64
	CallbackAllow     string // comma-separated CIDRs, IPs, host names, *.wildcards allowed beside public addresses
	CallbackExpiry    time.Duration
	Retention         string // STATUS=DURATION,… (engine.ParseRetention over engine.DefaultRetention)
	Pprof             string // loopback address of the profiler; "" off
	AdminTokenFile    string
	AllowedOrigins    string // comma-separated origins besides the server's own
	AllowedHosts      string // comma-separated Host names besides addresses, localhost, the host name
	TLS               TLS    // tls.go
}

// EnvStore is the environment variable that sets the store.
const EnvStore = "PLUTO_STORE"

// Defaults are the settings when nothing sets them.
func Defaults() Server {
	return Server{
		Store:           "sqlite:" + filepath.Join("pluto-data", "pluto.db"),
		HTTP:            "127.0.0.1:7070",
		GRPC:            "127.0.0.1:7071",
		Heartbeat:       5 * time.Second,
		MaxPayload:      1 << 20,
		StopTimeout:     30 * time.Second,
		LeaseTTL:        10 * time.Second,
		RenewInterval:   2 * time.Second,
		LogLevel:        "info",
		LogFormat:       "text",
		MisfireGrace:    5 * time.Second,
		RetryBase:       time.Second,
		RetryMax:        10 * time.Minute,
		MaxLostAttempts: 3,
		CallbackExpiry:  24 * time.Hour,
		Retention:       engine.DefaultRetention.String(),
	}
}

// Key is one setting: its name in the file (and flag), whether a running
// server applies a change to it, and its help text.
type Key struct {
	Name  string
	Live  bool
	Usage string
	kind  kind
	field func(*Server) any // pointer to the field
}

type kind int

const (
	kString kind = iota
	kDuration
	kInt
	kBool
)

// Keys are every setting, in the order of `pluto server --help`.
var Keys = append([]Key{
	{Name: "store", kind: kString, field: func(s *Server) any { return &s.Store },
		Usage: "store: sqlite:PATH or postgres://… (env " + EnvStore + ")"},
	{Name: "http", kind: kString, field: func(s *Server) any { return &s.HTTP },
		Usage: "HTTP listen address (JSON API, /healthz, /readyz)"},
	{Name: "grpc", kind: kString, field: func(s *Server) any { return &s.GRPC },
		Usage: "gRPC listen address (workers, Go client)"},
	{Name: "id", kind: kString, field: func(s *Server) any { return &s.ID },
		Usage: "server ID (default hostname-pid)"},
	{Name: "heartbeat", Live: true, kind: kDuration, field: func(s *Server) any { return &s.Heartbeat },
		Usage: "worker heartbeat interval (suspect after 1.5 intervals of silence, dead after 3, or 2 after its stream broke)"},
	{Name: "max-payload", Live: true, kind: kInt, field: func(s *Server) any { return &s.MaxPayload },
		Usage: "largest run payload in bytes"},
	{Name: "stop-timeout", Live: true, kind: kDuration, field: func(s *Server) any { return &s.StopTimeout },
		Usage: "how long a graceful stop may take: the wait for runs on workers, then flushing (the last fifth, at most 5s)"},
	{Name: "stop-workers-on-exit", Live: true, kind: kBool, field: func(s *Server) any { return &s.StopWorkersOnExit },
		Usage: "on a graceful stop, tell connected workers to drain and exit"},
	{Name: "lease-ttl", kind: kDuration, field: func(s *Server) any { return &s.LeaseTTL },
		Usage: "leader lease and server registration lifetime without renewal"},
	{Name: "renew-interval", kind: kDuration, field: func(s *Server) any { return &s.RenewInterval },
		Usage: "how often the leases are renewed (shorter than --lease-ttl)"},
	{Name: "standby", kind: kBool, field: func(s *Server) any { return &s.Standby },
		Usage: "serve and dispatch, but never lead: never fire schedules or promote delayed runs (pre-release mode)"},
	{Name: "completion-log", kind: kString, field: func(s *Server) any { return &s.CompletionLog },
		Usage: "append one line (run id, status) per committed terminal status to this file (audit; written after the commit, so a killed server may miss its last lines)"},
	{Name: "log-level", Live: true, kind: kString, field: func(s *Server) any { return &s.LogLevel },
		Usage: "log level: debug, info, warn or error"},
	{Name: "log-format", kind: kString, field: func(s *Server) any { return &s.LogFormat },
		Usage: "log format: text or json"},
	{Name: "misfire-grace", Live: true, kind: kDuration, field: func(s *Server) any { return &s.MisfireGrace },
		Usage: "how late a cron slot may fire and still count as on time"},
	{Name: "retry-base", Live: true, kind: kDuration, field: func(s *Server) any { return &s.RetryBase },
		Usage: "first retry backoff (doubles per failure, jittered)"},
	{Name: "retry-max", Live: true, kind: kDuration, field: func(s *Server) any { return &s.RetryMax },
		Usage: "longest retry backoff"},
	{Name: "max-lost-attempts", kind: kInt, field: func(s *Server) any { return &s.MaxLostAttempts },
		Usage: "attempts of a run that may be lost with their worker (it died holding the run) before the run fails instead of being retried; lost attempts do not use up retries"},
	{Name: "callback-allow", kind: kString, field: func(s *Server) any { return &s.CallbackAllow },
		Usage: "non-public destinations runs' callback URLs may also reach: comma-separated CIDRs, IPs, host names and *.wildcards (default: public addresses only; see docs/security.md)"},
	{Name: "pprof", kind: kString, field: func(s *Server) any { return &s.Pprof },
		Usage: "serve net/http/pprof on this loopback address (e.g. 127.0.0.1:6060; off by default; no authentication, so loopback only)"},
	{Name: "admin-token-file", kind: kString, field: func(s *Server) any { return &s.AdminTokenFile },
		Usage: "on the first start against an empty store, write the admin token created there to this file (mode 0600) as well as printing it"},
	{Name: "allowed-origins", kind: kString, field: func(s *Server) any { return &s.AllowedOrigins },
		Usage: "comma-separated browser origins (https://console.example.com) allowed to call the HTTP API besides the server's own; * allows any"},
	{Name: "allowed-hosts", kind: kString, field: func(s *Server) any { return &s.AllowedHosts },
		Usage: "comma-separated Host header names the HTTP API answers besides IP addresses, localhost and this machine's name (DNS rebinding guard); * allows any"},
	{Name: "retention", Live: true, kind: kString, field: func(s *Server) any { return &s.Retention },
		Usage: "how long finished runs are kept, per status: comma-separated STATUS=DURATION (statuses succeeded, failed, cancelled, timed_out, skipped; durations such as 30s, 24h, 7d; 0 or off keeps them for ever); statuses not named keep their default"},
	{Name: "callback-expiry", kind: kDuration, field: func(s *Server) any { return &s.CallbackExpiry },
		Usage: "how long after a run ends the POST of its outcome to its callback URL is retried"},
}, tlsKeys[:]...) // tls.go

// key returns the Key called name.
func key(name string) (Key, bool) {
	for _, k := range Keys {
		if k.Name == name {
			return k, true
		}
	}
	return Key{}, false
}

// AddFlags defines one flag per key on f, with the defaults of d. Load
// reads back only the flags given on the command line.
func AddFlags(f *pflag.FlagSet, d Server) {
	for _, k := range Keys {
		switch p := k.field(&d).(type) {
		case *string:
			f.String(k.Name, *p, k.Usage)
		case *time.Duration:
			v := new(time.Duration)
			*v = *p
			f.Var(dur.Value{D: v}, k.Name, k.Usage)
		case *int64:
			f.Int64(k.Name, *p, k.Usage)
		case *bool:
			f.Bool(k.Name, *p, k.Usage)
		}
	}
}

// Sources are where Load reads settings from, lowest precedence first.
type Sources struct {
	// Defaults are the starting values (zero: Defaults()).
	Defaults *Server
	// File is a YAML file ("" for none).
	File string
	// Getenv reads the environment (nil: none). Only EnvStore is read.
	Getenv func(string) string
	// Flags are the command line; only flags that were given count.
	Flags *pflag.FlagSet
}

// Error is an invalid setting: the key, where its value came from, and
// what is wrong with it.
type Error struct {
	Key    string
	Source string // "--heartbeat", "pluto.yaml", "PLUTO_STORE", or "" (a default)
	Msg    string
}

func (e *Error) Error() string {
	switch {
	case strings.HasPrefix(e.Source, "--"):
		return fmt.Sprintf("invalid %s: %s", e.Source, e.Msg)
	case e.Source == "":
		return fmt.Sprintf("%s: %s", e.Key, e.Msg)
	case strings.HasPrefix(e.Source, "PLUTO_"):
		return fmt.Sprintf("invalid %s (%s): %s", e.Source, e.Key, e.Msg)
	}
	return fmt.Sprintf("%s: key %q: %s", e.Source, e.Key, e.Msg)
}

// FromFlag reports whether the error is about a command-line flag.
func (e *Error) FromFlag() bool { return strings.HasPrefix(e.Source, "--") }

// Loaded is the outcome of Load: the settings and where each came from.
type Loaded struct {
	Server
	// Origin maps a key to the source of its value ("--heartbeat", the
	// file name, "PLUTO_STORE"); keys left at their default are absent.
	Origin map[string]string
}

// Load merges defaults, the file, the environment and the flags given on
// the command line (each later one wins) and validates the result. Every
// error names its key and source (*Error, several joined).
func Load(src Sources) (Loaded, error) {
	l := Loaded{Server: Defaults(), Origin: map[string]string{}}
	if src.Defaults != nil {
		l.Server = *src.Defaults
	}
	var errs []error
	if src.File != "" {
		errs = append(errs, l.loadFile(src.File)...)
	}
	if src.Getenv != nil {
		if v := src.Getenv(EnvStore); v != "" {
			errs = append(errs, l.set("store", v, EnvStore))
		}
	}
	if src.Flags != nil {
		src.Flags.Visit(func(f *pflag.Flag) {
			if _, ok := key(f.Name); ok {
				errs = append(errs, l.set(f.Name, f.Value.String(), "--"+f.Name))
			}
		})
	}
	if err := errors.Join(errs...); err != nil {
		return l, err
	}
	return l, l.validate()
}

// loadFile reads the YAML file with koanf and sets every key in it.
func (l *Loaded) loadFile(path string) []error {
	k := koanf.New(".")
	if err := k.Load(file.Provider(path), yaml.Parser()); err != nil {
		return []error{fmt.Errorf("config file %s: %w", path, err)}
	}
	all := k.All()
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(all)) {
		errs = append(errs, l.set(name, all[name], path))
	}
	return errs
}

// set parses v (a YAML value, or a flag's or variable's text) into key.
func (l *Loaded) set(name string, v any, source string) error {
	k, ok := key(name)
	if !ok {
		msg := "unknown key"
		if alt := strings.ReplaceAll(name, "_", "-"); alt != name {
			if _, ok := key(alt); ok {
				msg += fmt.Sprintf(" (did you mean %q?)", alt)
			}
		}
		known := make([]string, len(Keys))
		for i, k := range Keys {
			known[i] = k.Name
		}
		return &Error{Key: name, Source: source, Msg: msg + "; known keys: " + strings.Join(known, ", ")}
	}
	bad := func(format string, args ...any) error {
		return &Error{Key: name, Source: source, Msg: fmt.Sprintf(format, args...)}
	}
	switch p := k.field(&l.Server).(type) {
	case *string:
		switch x := v.(type) {
		case string:
			*p = x
		case int, int64, uint64, float64, bool:
			*p = fmt.Sprint(x)
		default:
			return bad("want a string, not %s", describe(v))
		}
	case *time.Duration:
		s, ok := v.(string)
		if !ok {
			return bad("want a duration such as \"5s\" or \"1m30s\", not %s", describe(v))
		}
		d, err := dur.Parse(strings.TrimSpace(s))
		if err != nil {
			return bad("%v", err)
		}
		*p = d
	case *int64:
		switch x := v.(type) {
		case int:
			*p = int64(x)
		case int64:
			*p = x
		case uint64:
			if x > math.MaxInt64 {
				return bad("%d is too large", x)
			}
			*p = int64(x)
		case float64:
			if x != math.Trunc(x) || math.Abs(x) > 1<<62 {
				return bad("want a whole number, not %v", x)
			}
			*p = int64(x)
		case string:
			n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
			if err != nil {
				return bad("want a whole number, not %q", x)
			}
			*p = n
		default:
			return bad("want a whole number, not %s", describe(v))
		}
	case *bool:
		switch x := v.(type) {
		case bool:
			*p = x
		case string:
			b, err := strconv.ParseBool(x)
			if err != nil {
				return bad("want true or false, not %q", x)
			}
			*p = b
		default:
			return bad("want true or false, not %s", describe(v))
		}
	}
	l.Origin[name] = source
	return nil
}

func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "an empty value"
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	case string:
		return strconv.Quote(x)
	}
	return fmt.Sprintf("%v", v)
}

// validate checks the merged settings; each error names its key and the
// source of the value at fault.
func (l *Loaded) validate() error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, &Error{Key: name, Source: l.Origin[name], Msg: fmt.Sprintf(format, args...)})
	}
	s := &l.Server
	if strings.TrimSpace(s.Store) == "" {
		bad("store", "must not be empty")
	}
	for name, addr := range map[string]string{"http": s.HTTP, "grpc": s.GRPC} {
		if strings.Contains(addr, "://") {
			bad(name, "%q: want HOST:PORT, not a URL", addr)
		} else if _, _, err := net.SplitHostPort(addr); err != nil {
			bad(name, "%q: want HOST:PORT (%v)", addr, err)
		}
	}
	for _, k := range Keys {
		if d, ok := k.field(s).(*time.Duration); ok && *d <= 0 {
			bad(k.Name, "must be positive, not %s", *d)
		}
	}
	if s.MaxPayload <= 0 {
		bad("max-payload", "must be positive, not %d", s.MaxPayload)
	}
	if s.LeaseTTL > 0 && s.RenewInterval >= s.LeaseTTL {
		bad("renew-interval", "%s must be shorter than lease-ttl (%s)", s.RenewInterval, s.LeaseTTL)
	}
	if s.RetryBase > 0 && s.RetryMax > 0 && s.RetryBase > s.RetryMax {
		bad("retry-base", "%s must not exceed retry-max (%s)", s.RetryBase, s.RetryMax)
	}
	if _, err := engine.ParseRetention(s.Retention, engine.DefaultRetention); err != nil {
		bad("retention", "%v", err)
	}
	if _, err := ParseLevel(s.LogLevel); err != nil {
		bad("log-level", "%q: want debug, info, warn or error", s.LogLevel)
	}
	if s.LogFormat != "text" && s.LogFormat != "json" {
		bad("log-format", "%q: want text or json", s.LogFormat)
	}
	errs = append(errs, l.validateTLS()...)
	slices.SortStableFunc(errs, func(a, b error) int {
		return strings.Compare(a.(*Error).Key, b.(*Error).Key)
	})
	return errors.Join(errs...)
}

// ParseLevel parses a log level name.
func ParseLevel(s string) (slog.Level, error) {
	var lvl slog.Level
	switch strings.ToLower(s) {
	case "debug", "info", "warn", "error":
		return lvl, lvl.UnmarshalText([]byte(s))
	}
	return lvl, fmt.Errorf("unknown log level %q", s)
}

// Change is a key whose value differs between two configurations.
type Change struct {
	Key      string
	Old, New string
	Live     bool // a running server applies it; otherwise it needs a restart
}

// Diff lists the keys whose values differ from old to new, in Keys order.
func Diff(old, new Server) []Change {
	var out []Change
	for _, k := range Keys {
		o, n := fmt.Sprint(deref(k.field(&old))), fmt.Sprint(deref(k.field(&new)))
		if o != n {
			out = append(out, Change{Key: k.Name, Old: o, New: n, Live: k.Live})
		}
	}
	return out
}

func deref(p any) any {
	switch x := p.(type) {
	case *string:
		return *x
	case *time.Duration:
		return *x
	case *int64:
		return *x
	case *bool:
		return *x
	}
	return p
}
