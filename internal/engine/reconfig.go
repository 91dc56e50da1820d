package engine

import (
	"errors"
	"fmt"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// Live is the part of an engine's configuration that may change while it
// runs (Reconfigure). Every engine goroutine reads it through e.live(),
// one atomic load of an immutable snapshot, so a reader always sees one
// consistent set of values and never races a reload.
type Live struct {
	// HeartbeatInterval is the interval workers are told when they
	// connect. A worker keeps the interval it was told for as long as its
	// stream lasts (the protocol has no message to change it later), so
	// its liveness is judged by the longer of that interval and the
	// current one: shortening the interval never declares a connected
	// worker dead for heartbeating at the rate it was told. Workers pick a
	// new interval up when they reconnect.
	HeartbeatInterval time.Duration
	// SuspectAfter and DeadAfter: zero derives them from
	// HeartbeatInterval (1.5 and 3 intervals).
	SuspectAfter time.Duration
	DeadAfter    time.Duration
	// MaxPayload caps a run's payload in bytes.
	MaxPayload int64
	// MisfireGrace is how late a cron slot may fire and still be on time.
	MisfireGrace time.Duration
	// RetryBase and RetryMax bound the retry backoff.
	RetryBase time.Duration
	RetryMax  time.Duration
	// Retention is how long finished runs are kept (retention.go).
	Retention Retention
}

// derive fills SuspectAfter and DeadAfter from the heartbeat interval
// when they are zero.
func (l *Live) derive() {
	if l.SuspectAfter <= 0 {
		// One interval missed, with slack for a heartbeat in flight.
		l.SuspectAfter = l.HeartbeatInterval * 3 / 2
	}
	if l.DeadAfter <= 0 {
		l.DeadAfter = 3 * l.HeartbeatInterval
	}
}

// validate names the first bad field.
func (l *Live) validate() error {
	var errs []error
	pos := func(name string, d time.Duration) {
		if d <= 0 {
			errs = append(errs, &FieldError{Field: name, Message: fmt.Sprintf("must be positive, not %s", d)})
		}
	}
	pos("heartbeat_interval", l.HeartbeatInterval)
	pos("suspect_after", l.SuspectAfter)
	pos("dead_after", l.DeadAfter)
	pos("misfire_grace", l.MisfireGrace)
	pos("retry_base", l.RetryBase)
	pos("retry_max", l.RetryMax)
	for _, s := range store.AllStatuses {
		if d := l.Retention.For(s); d < 0 {
			errs = append(errs, &FieldError{Field: "retention", Message: fmt.Sprintf("%s: must not be negative, not %s", s, d)})
		}
	}
	if l.MaxPayload <= 0 {
		errs = append(errs, &FieldError{Field: "max_payload", Message: fmt.Sprintf("must be positive, not %d", l.MaxPayload)})
	}
	if len(errs) == 0 && l.SuspectAfter >= l.DeadAfter {
		errs = append(errs, &FieldError{Field: "suspect_after", Message: fmt.Sprintf("(%s) must be shorter than dead_after (%s)", l.SuspectAfter, l.DeadAfter)})
	}
	if len(errs) == 0 && l.RetryBase > l.RetryMax {
		errs = append(errs, &FieldError{Field: "retry_base", Message: fmt.Sprintf("(%s) must not exceed retry_max (%s)", l.RetryBase, l.RetryMax)})
	}
	return errors.Join(errs...)
}

// liveFromConfig is the live part of a defaulted Config.
func liveFromConfig(c *Config) *Live {
	return &Live{
		HeartbeatInterval: c.HeartbeatInterval, SuspectAfter: c.SuspectAfter, DeadAfter: c.DeadAfter,
		MaxPayload: c.MaxPayload, MisfireGrace: c.MisfireGrace, RetryBase: c.RetryBase, RetryMax: c.RetryMax,
		Retention: c.Retention,
	}
}

// Reconfigure changes the live settings of a running engine. Zero
// SuspectAfter and DeadAfter are derived from HeartbeatInterval; any other
// zero or invalid value is an error naming the field (as a *FieldError
// joined with the others), and nothing changes.
//
// What takes effect when:
//
//   - MaxPayload: the next submission.
//   - RetryBase, RetryMax: the next failed attempt's backoff.
//   - MisfireGrace: the next cron tick.
//   - Retention: at once (the leader's retention loop is woken).
//   - HeartbeatInterval: workers connecting from now on are told the new
//     interval; connected workers keep theirs until they reconnect (see
//     Live.HeartbeatInterval). SuspectAfter and DeadAfter apply at the
//     next liveness check (at most a quarter of SuspectAfter later);
//     a worker whose stream already closed keeps the dead timer it got.
func (e *Engine) Reconfigure(l Live) error {
	l.derive()
	if err := l.validate(); err != nil {
		return fmt.Errorf("engine: reconfigure: %w", err)
	}
	old := e.live()
	e.liveCfg.Store(&l)
	if *old != l {
		e.log.Info("engine reconfigured", "heartbeat", l.HeartbeatInterval, "suspect_after", l.SuspectAfter,
			"dead_after", l.DeadAfter, "max_payload", l.MaxPayload, "misfire_grace", l.MisfireGrace,
			"retry_base", l.RetryBase, "retry_max", l.RetryMax, "retention", l.Retention.String())
	}
	if old.Retention != l.Retention {
		e.pokeRetention()
	}
	return nil
}

// Live returns the live settings in force.
func (e *Engine) Live() Live { return *e.live() }

// live is the current live configuration: Config's until Reconfigure.
func (e *Engine) live() *Live {
	if l := e.liveCfg.Load(); l != nil {
		return l
	}
	return liveFromConfig(&e.cfg) // an Engine not made by New (unit tests)
}

// suspectAfter and deadAfter judge a worker that was told to heartbeat
// every hb: by the longer of hb and the current interval.
func (l *Live) suspectAfter(hb time.Duration) time.Duration {
	return max(l.SuspectAfter, scaleLive(l.SuspectAfter, l.HeartbeatInterval, hb))
}

func (l *Live) deadAfter(hb time.Duration) time.Duration {
	return max(l.DeadAfter, scaleLive(l.DeadAfter, l.HeartbeatInterval, hb))
}

// scaleLive scales threshold d, set for interval cur, to interval hb.
func scaleLive(d, cur, hb time.Duration) time.Duration {
	if hb <= cur || cur <= 0 {
		return d
	}
	return time.Duration(float64(d) * float64(hb) / float64(cur))
}
