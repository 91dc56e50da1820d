package engine

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pluto-sched/pluto/internal/apijson"
	"github.com/pluto-sched/pluto/internal/store"
)

// alertHook is a webhook receiver behind an injected CallbackDoer; answer
// decides the body of its 200 (nil: "ok").
type alertHook struct {
	mu     sync.Mutex
	bodies []string
	ids    []string
	answer func(n int) string
}

func (h *alertHook) Do(req *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	h.bodies = append(h.bodies, string(body))
	h.ids = append(h.ids, req.Header.Get("X-Pluto-Alert-Id"))
	n := len(h.bodies)
	answer := h.answer
	h.mu.Unlock()
	out := "ok"
	if answer != nil {
		out = answer(n)
	}
	return &http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(strings.NewReader(out)), Request: req}, nil
}

func (h *alertHook) Bodies() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.bodies...)
}

func withAlertHook(h *alertHook) func(*Config) {
	return func(c *Config) {
		c.CallbackClient = h
		c.AlertBody = func(a *store.Alert) ([]byte, error) { return json.Marshal(apijson.FromAlert(a)) }
	}
}

func (en *env) alerts(job string) []*store.Alert {
	en.t.Helper()
	as, err := en.st.AlertList(en.ctx, store.AlertListParams{Job: job, Limit: 1000})
	if err != nil {
		en.t.Fatal(err)
	}
	return as
}

func (en *env) trigger(job string) *store.Run {
	en.t.Helper()
	r, err := en.e.JobTrigger(en.ctx, job, nil)
	if err != nil {
		en.t.Fatal(err)
	}
	synctest.Wait()
	return r
}

func TestAlertOnFailedRunOncePerRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &alertHook{}
		en := newEnv(t, withAlertHook(h))
		s, c := en.connect("w1", 4)
		en.putJob(store.Job{Name: "etl", Group: "g", Alerts: &store.AlertRules{On: []string{"failed"}, Webhook: hookURL}})
		r := en.trigger("etl")
		finish(s, OutcomeFailed, c.Tasks()[0])
		synctest.Wait()
		as := en.alerts("etl")
		if len(as) != 1 {
			t.Fatalf("%d alerts, want 1", len(as))
		}
		a := as[0]
		if a.Rule != "failed" || a.RunID != r.ID || a.Group != "g" || !strings.Contains(a.Reason, "boom") ||
			a.Delivery.State != store.CallbackDelivered || a.Delivery.Attempts != 1 {
			t.Errorf("alert: %+v", a)
		}
		bodies := h.Bodies()
		if len(bodies) != 1 {
			t.Fatalf("%d POSTs, want 1", len(bodies))
		}
		var got struct {
			Alert apijson.Alert `json:"alert"`
			Run   apijson.Run   `json:"run"`
		}
		if err := json.Unmarshal([]byte(bodies[0]), &got); err != nil {
			t.Fatalf("body %s: %v", bodies[0], err)
		}
		if got.Alert.ID != a.ID || got.Alert.Rule != "failed" || got.Run.ID != r.ID || got.Run.Status != "failed" {
			t.Errorf("body: %s", bodies[0])
		}
		// Retried and failed again: still one alert for the run and rule.
		if _, err := en.e.Retry(en.ctx, r.ID); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		finish(s, OutcomeFailed, c.Tasks()[len(c.Tasks())-1])
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := len(en.alerts("etl")); n != 1 {
			t.Errorf("%d alerts after a retry failed again, want 1", n)
		}
		// A success alerts nothing.
		en.trigger("etl")
		finish(s, OutcomeSucceeded, c.Tasks()[len(c.Tasks())-1])
		if n := len(en.alerts("etl")); n != 1 {
			t.Errorf("%d alerts after a success, want 1", n)
		}
	})
}

func TestAlertGroupDefaultAndOptOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		s, c := en.connect("w1", 4)
		if err := en.e.GroupAlertsPut(en.ctx, "g", &store.AlertRules{On: []string{"failed", "timed_out"}}); err != nil {
			t.Fatal(err)
		}
		en.putJob(store.Job{Name: "plain", Group: "g"})
		en.putJob(store.Job{Name: "quiet", Group: "g", Alerts: &store.AlertRules{}})
		en.trigger("plain")
		en.trigger("quiet")
		one := en.submit(SubmitSpec{Group: "g"})[0]
		for _, task := range c.Tasks() {
			finish(s, OutcomeFailed, task)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if n := len(en.alerts("plain")); n != 1 {
			t.Errorf("plain: %d alerts, want 1 (group default)", n)
		}
		if n := len(en.alerts("quiet")); n != 0 {
			t.Errorf("quiet: %d alerts, want 0 (its empty rules switch the default off)", n)
		}
		all := en.alerts("")
		if len(all) != 2 || !(all[0].RunID == one.ID || all[1].RunID == one.ID) {
			t.Errorf("alerts %+v, want plain's and the one-off's", all)
		}
		// Without the group's rules nothing more alerts.
		if err := en.e.GroupAlertsPut(en.ctx, "g", nil); err != nil {
			t.Fatal(err)
		}
		en.trigger("plain")
		finish(s, OutcomeFailed, c.Tasks()[len(c.Tasks())-1])
		time.Sleep(time.Second)
		synctest.Wait()
		if n := len(en.alerts("plain")); n != 1 {
			t.Errorf("plain: %d alerts after the group's rules were removed, want 1", n)
		}
	})
}

func TestAlertMaxDuration(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		s, c := en.connect("w1", 4)
		en.putJob(store.Job{Name: "slow", Alerts: &store.AlertRules{MaxDuration: time.Minute}})
		time.Sleep(time.Second) // the rules are read
		synctest.Wait()
		r := en.trigger("slow")
		ack(s, c.Tasks()[0])
		time.Sleep(59 * time.Second)
		synctest.Wait()
		if n := len(en.alerts("slow")); n != 0 {
			t.Fatalf("%d alerts before a minute, want 0", n)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		as := en.alerts("slow")
		if len(as) != 1 || as[0].Rule != store.AlertMaxDuration || as[0].RunID != r.ID || !strings.Contains(as[0].Reason, "longer than 1m") {
			t.Fatalf("alerts %+v, want one max_duration alert for %s", as, r.ID)
		}
		// Sweeps do not add another; the run's end neither.
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		finish(s, OutcomeSucceeded, c.Tasks()[0])
		if n := len(en.alerts("slow")); n != 1 {
			t.Errorf("%d alerts, want 1", n)
		}
	})
}

func TestAlertSLA(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// synctest's clock starts at 2000-01-01 00:00 UTC. Two days of
		// one-second heartbeats would take long under the race detector.
		slow := func(c *Config) {
			c.HeartbeatInterval, c.LeaseTTL, c.RenewInterval, c.ReconcileInterval = 10*time.Minute, time.Hour, 10*time.Minute, 10*time.Minute
		}
		en := newEnv(t, slow)
		s, c := en.connect("w1", 4)
		en.putJob(store.Job{Name: "daily", Schedule: "0 0 1 * * ?", Alerts: &store.AlertRules{SLA: "02:30"}})
		day1 := time.Now().Truncate(24 * time.Hour)
		// Day 1: the 01:00 run is still running at 02:30.
		time.Sleep(time.Until(day1.Add(time.Hour)) + time.Second)
		synctest.Wait()
		ack(s, c.Tasks()[0])
		time.Sleep(time.Until(day1.Add(150*time.Minute)) + time.Second)
		synctest.Wait()
		as := en.alerts("daily")
		if len(as) != 1 || as[0].Rule != store.AlertSLA || !as[0].LogicalTime.Equal(day1.Add(time.Hour)) ||
			!strings.Contains(as[0].Reason, "is running") {
			t.Fatalf("day 1: alerts %+v, want one sla alert for 01:00 naming the running run", as)
		}
		finish(s, OutcomeSucceeded, c.Tasks()[0])
		// Day 2: succeeded at 01:00, nothing.
		day2 := day1.Add(24 * time.Hour)
		time.Sleep(time.Until(day2.Add(time.Hour)) + time.Second)
		synctest.Wait()
		finish(s, OutcomeSucceeded, c.Tasks()[1])
		time.Sleep(time.Until(day2.Add(3 * time.Hour)))
		synctest.Wait()
		if n := len(en.alerts("daily")); n != 1 {
			t.Errorf("day 2: %d alerts, want 1 (day 1's)", n)
		}
		// A restarted leader checks the last deadline again: no repeat.
		en.e.Stop(en.ctx)
		en.e = en.start(en.st, slow)
		time.Sleep(time.Second)
		synctest.Wait()
		if n := len(en.alerts("daily")); n != 1 {
			t.Errorf("after a restart: %d alerts, want 1", n)
		}
	})
}

func TestAlertSweepFindsWhatACrashLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		en.putJob(store.Job{Name: "j", Group: "g", Alerts: &store.AlertRules{On: []string{"skipped"}}})
		// A skipped run stored behind the engine's back (as if its server
		// died before noting it).
		now := time.Now().UTC()
		err := en.st.Tx(en.ctx, func(tx store.Tx) error {
			_, err := tx.RunInsert(en.ctx, []store.RunInsertParams{{ID: "r_lost", Job: "j", Group: "g", Type: "t",
				Status: store.StatusSkipped, Error: "overlap", MaxAttempts: 1, RunAt: now, Now: now}})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(defaultReconcileInterval + time.Second)
		synctest.Wait()
		as := en.alerts("j")
		if len(as) != 1 || as[0].RunID != "r_lost" || as[0].Rule != "skipped" {
			t.Fatalf("alerts %+v, want the sweep's for r_lost", as)
		}
	})
}

func TestAlertChatFormats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &alertHook{answer: func(n int) string {
			if n == 1 {
				return `{"errcode":310000,"errmsg":"keywords not in content"}`
			}
			return `{"errcode":0,"errmsg":"ok"}`
		}}
		en := newEnv(t, withAlertHook(h))
		s, c := en.connect("w1", 4)
		en.putJob(store.Job{Name: "d", Alerts: &store.AlertRules{On: []string{"failed"}, Webhook: hookURL, Format: "dingtalk"}})
		en.trigger("d")
		finish(s, OutcomeFailed, c.Tasks()[0])
		time.Sleep(time.Minute)
		synctest.Wait()
		bodies := h.Bodies()
		if len(bodies) != 2 {
			t.Fatalf("%d POSTs, want 2 (the refused one retried)", len(bodies))
		}
		var msg struct {
			MsgType string `json:"msgtype"`
			Text    struct {
				Content string `json:"content"`
			} `json:"text"`
		}
		if err := json.Unmarshal([]byte(bodies[1]), &msg); err != nil || msg.MsgType != "text" || !strings.Contains(msg.Text.Content, "failed alert for job d") {
			t.Errorf("body %s (%v)", bodies[1], err)
		}
		a := en.alerts("d")[0]
		if a.Delivery.State != store.CallbackDelivered || a.Delivery.Attempts != 2 {
			t.Errorf("delivery %+v, want delivered at attempt 2", a.Delivery)
		}
	})
}

func TestAlertRulesValidation(t *testing.T) {
	en := newEnv(t, nil)
	for _, c := range []struct {
		rules *store.AlertRules
		field string
	}{
		{&store.AlertRules{On: []string{"succeeded"}}, "alerts.on"},
		{&store.AlertRules{On: []string{"failed", "failed"}}, "alerts.on"},
		{&store.AlertRules{SLA: "25:00"}, "alerts.sla"},
		{&store.AlertRules{SLA: "2:30"}, "alerts.sla"},
		{&store.AlertRules{SLA: "+1:+5"}, "alerts.sla"},
		{&store.AlertRules{MaxDuration: time.Millisecond}, "alerts.max_duration"},
		{&store.AlertRules{MaxDuration: -time.Second}, "alerts.max_duration"},
		{&store.AlertRules{On: []string{"failed"}, Format: "teams", Webhook: hookURL}, "alerts.format"},
		{&store.AlertRules{On: []string{"failed"}, Format: "slack"}, "alerts.format"},
		{&store.AlertRules{On: []string{"failed"}, Webhook: "http://127.0.0.1/hook"}, "alerts.webhook"},
		{&store.AlertRules{On: []string{"failed"}, Webhook: "ftp://x.example.com/"}, "alerts.webhook"},
		{&store.AlertRules{Webhook: hookURL}, "alerts"},
	} {
		_, _, err := en.e.JobPut(en.ctx, store.Job{Name: "v", Type: "t", Group: "g", Alerts: c.rules})
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("%+v: %v, want a field error on %s", c.rules, err, c.field)
		}
	}
	if err := en.e.GroupAlertsPut(context.Background(), "g", &store.AlertRules{SLA: "x"}); err == nil {
		t.Error("group rules with a bad SLA accepted")
	}
	if _, _, err := en.e.JobPut(en.ctx, store.Job{Name: "ok", Type: "t", Group: "g", Alerts: &store.AlertRules{On: []string{"failed", "skipped"},
		SLA: "23:59", MaxDuration: time.Hour, Webhook: hookURL, Format: "feishu"}}); err != nil {
		t.Errorf("good rules refused: %v", err)
	}
}

func TestSLADeadlines(t *testing.T) {
	sh, _ := time.LoadLocation("Asia/Shanghai")
	at := func(s string) time.Time {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			panic(err)
		}
		return t
	}
	for _, c := range []struct {
		now  string
		loc  *time.Location
		next string
	}{
		{"2026-12-03T00:00:00Z", time.UTC, "2026-12-03T02:30:00Z"},
		{"2026-12-03T02:30:00Z", time.UTC, "2026-12-04T02:30:00Z"},
		{"2026-12-03T03:00:00Z", time.UTC, "2026-12-04T02:30:00Z"},
		{"2026-12-02T18:00:00Z", sh, "2026-12-02T18:30:00Z"}, // 02:00 in Shanghai
		{"2026-12-02T19:00:00Z", sh, "2026-12-03T18:30:00Z"},
	} {
		got := slaNext(at(c.now), 2, 30, c.loc)
		if !got.Equal(at(c.next)) {
			t.Errorf("slaNext(%s, %s) = %s, want %s", c.now, c.loc, got, c.next)
		}
		if prev := slaPrev(got, 2, 30, c.loc); !prev.Equal(got.Add(-24 * time.Hour)) {
			t.Errorf("slaPrev(%s) = %s", got, prev)
		}
	}
}

// Two servers notice the same things — the one that ends a run or holds a
// long attempt, and the leader's sweep — and one alert per run and rule
// results.
func TestAlertsOncePerRunAcrossServers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en1, en2, _ := shared(t)
		s2, c2 := en2.connect("w2", 10, "t")
		en1.putJob(store.Job{Name: "j", Type: "t", Alerts: &store.AlertRules{On: []string{"failed"}, MaxDuration: time.Minute}})
		time.Sleep(alertRulesTTL + time.Second) // both servers read the rules
		synctest.Wait()
		if _, err := en2.e.alerts.ruleSet(en2.ctx); err != nil {
			t.Fatal(err)
		}
		r, err := en2.e.JobTrigger(en2.ctx, "j", nil)
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		ack(s2, c2.Tasks()[0])
		// s2's timer and, every pass, the leader's sweep see the long
		// attempt; then s2 ends the run failed, which both see as well.
		time.Sleep(3 * defaultReconcileInterval)
		synctest.Wait()
		finish(s2, OutcomeFailed, c2.Tasks()[0])
		time.Sleep(3 * defaultReconcileInterval)
		synctest.Wait()
		as := en1.alerts("j")
		rules := map[string]int{}
		for _, a := range as {
			if a.RunID != r.ID {
				t.Errorf("alert of run %s, want %s", a.RunID, r.ID)
			}
			rules[a.Rule]++
		}
		if len(as) != 2 || rules["failed"] != 1 || rules["max_duration"] != 1 {
			t.Fatalf("alerts by rule %v, want one failed and one max_duration", rules)
		}
	})
}

// Alerts are kept as long as the longest retention of runs.
func TestAlertRetention(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, func(c *Config) {
			c.Retention = Retention{Succeeded: time.Minute, Failed: 10 * time.Minute, TimedOut: time.Minute,
				Cancelled: time.Minute, Skipped: time.Minute}
		})
		s, c := en.connect("w1", 4)
		en.putJob(store.Job{Name: "j", Alerts: &store.AlertRules{On: []string{"failed"}}})
		en.trigger("j")
		finish(s, OutcomeFailed, c.Tasks()[0])
		if n := len(en.alerts("j")); n != 1 {
			t.Fatalf("%d alerts, want 1", n)
		}
		time.Sleep(9 * time.Minute)
		synctest.Wait()
		if n := len(en.alerts("j")); n != 1 {
			t.Fatalf("%d alerts after 9 minutes, want 1 (kept 10)", n)
		}
		time.Sleep(3 * time.Minute)
		synctest.Wait()
		if n := len(en.alerts("j")); n != 0 {
			t.Errorf("%d alerts after 12 minutes, want 0", n)
		}
	})
}

// An hourly job with an SLA: the slots before the deadline that succeeded
// in time raise nothing, and the slot at the deadline belongs to the next
// day's.
func TestAlertSLAHourly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		slow := func(c *Config) {
			c.HeartbeatInterval, c.LeaseTTL, c.RenewInterval, c.ReconcileInterval = 10*time.Minute, time.Hour, 10*time.Minute, 10*time.Minute
		}
		en := newEnv(t, slow)
		s, c := en.connect("w1", 4)
		en.putJob(store.Job{Name: "hourly", Schedule: "0 0 * * * ?", Alerts: &store.AlertRules{SLA: "06:00"}})
		day := time.Now().Truncate(24 * time.Hour)
		done := 0
		for h := 1; h <= 8; h++ {
			time.Sleep(time.Until(day.Add(time.Duration(h)*time.Hour)) + time.Second)
			synctest.Wait()
			ts := c.Tasks()[done:]
			finish(s, OutcomeSucceeded, ts...)
			done += len(ts)
		}
		if as := en.alerts("hourly"); len(as) != 0 {
			t.Fatalf("alerts %v, want none: every slot before 06:00 succeeded in time", as[0].Reason)
		}
		if done != 8 {
			t.Fatalf("%d runs, want 8", done)
		}
	})
}
