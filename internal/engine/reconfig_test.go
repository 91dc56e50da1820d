package engine

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

func TestLiveConfigReconfigureValidates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		before := en.e.Live()
		good := before
		good.SuspectAfter, good.DeadAfter = 0, 0
		for name, mod := range map[string]func(*Live){
			"heartbeat_interval": func(l *Live) { l.HeartbeatInterval = 0 },
			"max_payload":        func(l *Live) { l.MaxPayload = -1 },
			"misfire_grace":      func(l *Live) { l.MisfireGrace = 0 },
			"retry_base":         func(l *Live) { l.RetryBase = time.Hour },
			"suspect_after":      func(l *Live) { l.SuspectAfter = time.Minute },
		} {
			l := good
			mod(&l)
			err := en.e.Reconfigure(l)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != name || !strings.Contains(err.Error(), name) {
				t.Errorf("%s: error %v, want a FieldError naming it", name, err)
			}
			if en.e.Live() != before {
				t.Fatalf("%s: an invalid reconfigure changed the settings to %+v", name, en.e.Live())
			}
		}
		l := good
		l.HeartbeatInterval = 2 * time.Second
		if err := en.e.Reconfigure(l); err != nil {
			t.Fatal(err)
		}
		got := en.e.Live()
		if got.SuspectAfter != 3*time.Second || got.DeadAfter != 6*time.Second || en.e.HeartbeatInterval() != 2*time.Second {
			t.Fatalf("derived %+v, want suspect 3s and dead 6s", got)
		}
	})
}

// Shortening the heartbeat interval must not kill workers that were told
// the longer one; workers connecting later are told, and judged by, the
// new one.
func TestLiveConfigReconfigureHeartbeatSparesConnectedWorkers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil) // 1s: dead after 3s
		old, _ := en.connectSilent("old", 1)
		l := en.e.Live()
		l.HeartbeatInterval, l.SuspectAfter, l.DeadAfter = 200*time.Millisecond, 0, 0
		if err := en.e.Reconfigure(l); err != nil {
			t.Fatal(err)
		}
		young, _ := en.connectSilent("young", 1)
		if old.HeartbeatInterval() != time.Second || young.HeartbeatInterval() != 200*time.Millisecond {
			t.Fatalf("told %v and %v, want 1s and 200ms", old.HeartbeatInterval(), young.HeartbeatInterval())
		}
		time.Sleep(time.Second)
		synctest.Wait()
		states := map[string]WorkerState{}
		for _, w := range en.e.Workers() {
			states[w.ID] = w.State
		}
		if _, ok := states["young"]; ok {
			t.Fatalf("young worker silent for 1s (5 of its intervals) still listed: %v", states)
		}
		if states["old"] != WorkerAlive {
			t.Fatalf("old worker %q after 1s of silence, want alive (it was told 1s)", states["old"])
		}
		time.Sleep(2500 * time.Millisecond)
		synctest.Wait()
		if ws := en.e.Workers(); len(ws) != 0 {
			t.Fatalf("old worker silent for 3.5s still listed: %+v", ws)
		}
	})
}

func TestLiveConfigReconfigureLimitsAndBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		l := en.e.Live()
		l.MaxPayload = 10
		l.RetryBase, l.RetryMax = time.Minute, time.Hour
		if err := en.e.Reconfigure(l); err != nil {
			t.Fatal(err)
		}
		if _, err := en.e.Submit(en.ctx, []SubmitSpec{{Type: "noop", Group: "g", Payload: []byte(`{"a":"0123456789"}`)}}); !errors.Is(err, ErrPayloadTooLarge) {
			t.Fatalf("payload over the new limit: %v", err)
		}
		s, c := en.connect("w1", 1)
		run := en.submit(SubmitSpec{Retries: 1})[0]
		finish(s, OutcomeFailed, c.Tasks()[0])
		r := en.wantStatus(run.ID, store.StatusPending)
		if d := r.RunAt.Sub(time.Now()); d < 30*time.Second || d > time.Minute {
			t.Fatalf("retry in %v, want within [30s, 1m] of the new base", d)
		}
	})
}

// Reconfigure races nothing: run with -race.
func TestLiveConfigReconfigureConcurrentWithWork(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		s, c := en.connect("w1", 4)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			l := en.e.Live()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				l.HeartbeatInterval = time.Second + time.Duration(i%2)*time.Second
				l.SuspectAfter, l.DeadAfter = 0, 0
				l.RetryBase = time.Second + time.Duration(i%3)*time.Millisecond
				l.MaxPayload = 1<<20 + int64(i)
				if err := en.e.Reconfigure(l); err != nil {
					t.Error(err)
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
		for range 20 {
			en.submit(SubmitSpec{Retries: 2})
			ts := c.Tasks()
			finish(s, OutcomeFailed, ts[len(ts)-1])
			time.Sleep(100 * time.Millisecond)
		}
		close(stop)
		wg.Wait()
	})
}
