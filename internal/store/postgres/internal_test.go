package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pluto-sched/pluto/internal/store"
)

func internalTestURL() string {
	if u := os.Getenv("PLUTO_TEST_POSTGRES"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// openInternal opens a store in a fresh schema, or skips (fails under CI)
// without PostgreSQL. The schema is dropped at the end.
func openInternal(t *testing.T) *Store {
	t.Helper()
	ctx := context.Background()
	u := internalTestURL()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("PostgreSQL unreachable at %s: %v", u, err)
		}
		t.Skipf("PostgreSQL unreachable at %s: SKIPPING the PostgreSQL tests: %v", u, err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	schema := "pluto_test_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		_, _ = conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
		conn.Close(ctx)
	})
	s, err := Open(ctx, u, Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestQueryPlans: the statements on hot paths find their rows through
// indexes — with custom and with generic plans, and whatever the table's
// statistics say (here: none, as before the first ANALYZE, which is when
// a planner that trusts them picks a sequential scan).
func TestQueryPlans(t *testing.T) {
	s := openInternal(t)
	ctx := context.Background()
	now := time.Now()
	const n = 5000
	ps := make([]store.RunInsertParams, n)
	for i := range ps {
		ps[i] = store.RunInsertParams{ID: fmt.Sprintf("r%05d", i), Type: "t", Group: "g", Status: store.StatusQueued, Now: now}
		if i%10 == 0 {
			ps[i].Status = store.StatusPending
		}
	}
	if err := s.Tx(ctx, func(tx store.Tx) error {
		if _, err := tx.RunInsert(ctx, ps); err != nil {
			return err
		}
		_, err := tx.RunClaim(ctx, store.RunClaimParams{Group: "g", Types: []string{"t"}, Limit: n / 2, ServerID: "srv", Now: now})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	ids := func(k int) []string {
		out := make([]string, k)
		for i := range out {
			out[i] = fmt.Sprintf("r%05d", i*7%n)
		}
		return out
	}
	fill := func(k int, v any) any {
		switch v := v.(type) {
		case int64:
			out := make([]int64, k)
			for i := range out {
				out[i] = v + int64(i)
			}
			return out
		case int32:
			out := make([]int32, k)
			for i := range out {
				out[i] = v
			}
			return out
		case string:
			out := make([]string, k)
			for i := range out {
				out[i] = v
			}
			return out
		case time.Time:
			out := make([]time.Time, k)
			for i := range out {
				out[i] = v
			}
			return out
		}
		panic(v)
	}
	for _, k := range []int{1, 512} {
		cases := []struct {
			name string
			sql  string
			args []any
			want string // an index the plan must use
		}{
			{"claim", sqlClaim, []any{"srv", "g", []string{"t", "u"}, int64(k), now}, "queue_order"},
			{"start", sqlStart, []any{ids(k), fill(k, int32(1)), fill(k, now), fill(k, "w"), fill(k, "")}, "runs_id_key"},
			{"finish", sqlFinish, []any{ids(k), fill(k, int32(1)), fill(k, "succeeded"), fill(k, now), fill(k, now),
				fill(k, "w"), fill(k, int32(0)), fill(k, now), fill(k, "{}"), fill(k, ""), fill(k, ""), fill(k, int32(0))}, "runs_id_key"},
			{"adopt", sqlAdopt, []any{ids(k), fill(k, int32(1)), fill(k, "srv2")}, "runs_id_key"},
			{"promote", sqlPromote, []any{now, int64(k)}, "pending_order"},
			{"requeue lost", sqlRequeueLost, []any{now, int64(k), now}, "active_server"},
			{"attempts of finishes", sqlAttemptFinish, []any{ids(k), fill(k, int32(1)), fill(k, "w"), fill(k, now), fill(k, now),
				fill(k, "failed"), fill(k, ""), fill(k, "")}, "runs_id_key"},
			{"attempts", sqlAttempts, []any{"id", int64(1000)}, "run_attempts_pkey"},
			{"slots of a job", sqlListSlots, []any{"j", now.Add(-time.Hour), now, int64(1000)}, "runs_job_slot"},
			{"gate: queue", sqlGateQueue, []any{"id", now}, "runs_id_key"},
			{"gate: skip", sqlGateSkip, []any{"id", now, "upstream failed"}, "runs_id_key"},
			{"gate: reblock", sqlGateReblock, []any{"id"}, "runs_id_key"},
			{"cancel", sqlCancel, []any{now, "x", int64(5), "g", "t", int32(0), now, "j"}, "queue_order"},
			{"cancel: blocked", sqlCancel, []any{now, "x", int64(5), "g", "t", int32(0), now, "j"}, "blocked_pkey"},
			{"cancel: job_live", sqlCancel, []any{now, "x", int64(5), "g", "t", int32(0), now, "j"}, "job_live_pkey"},
			{"finish: job_live", sqlFinishJobLive, []any{fill(k, int64(1)), fill(k, "j"), fill(k, int64(1))}, "job_live_pkey"},
			{"insert full", sqlInsertFull, append(insertArgs(k, now), fill(k, ""), fill(k, "http://x/")), "Conflict Resolution: NOTHING"},
			{"retry: callbacks", sqlRetry, []any{now, int64(5), false}, "callbacks_seq"},
			{"callback list due", sqlCallbackListDue, []any{now, now, int64(k)}, "callbacks_due"},
			{"callback list due: runs", sqlCallbackListDue, []any{now, now, int64(k)}, "runs_pkey"},
			{"callback record", sqlCallbackRecord, []any{ids(k), fill(k, int32(1)), fill(k, now), fill(k, "delivered"),
				fill(k, now), fill(k, ""), fill(k, now)}, "runs_id_key"},
			{"callback rows", sqlCallbackRows, []any{fill(k, int64(1)), fill(k, now), fill(k, int64(1))}, "callbacks_seq"},
			{"callback next at", sqlCallbackNextAt, nil, "callbacks_due"},
			{"get by slots", sqlGetBySlots, []any{fill(k, "j"), fill(k, now)}, "runs_job_slot"},
			{"list active for job: job_live", sqlListActiveForJob, []any{"j", int64(k)}, "job_live_pkey"},
			{"list active for job: blocked", sqlListActiveForJob, []any{"j", int64(k)}, "blocked_pkey"},
			{"list active for job: runs", sqlListActiveForJob, []any{"j", int64(k)}, "runs_pkey"},
			{"unblock candidate", sqlUnblockCandidate, []any{"j"}, "blocked_pkey"},
			{"unblock candidate: live", sqlUnblockCandidate, []any{"j"}, "job_live_pkey"},
			{"unblock", sqlUnblock, []any{int64(5), "j"}, "runs_pkey"},
			{"lock job", sqlLockJob, []any{"j"}, "jobs_pkey"},
			{"job list due", sqlJobListDue, []any{now, int64(k)}, "jobs_due"},
			{"job next fire", sqlJobNextFire, nil, "jobs_due"},
			{"job advance", sqlJobAdvance, []any{[]string{"j"}, []time.Time{now}, []time.Time{now}, []time.Time{now}}, "jobs_pkey"},
			{"retry", sqlRetry, []any{now, int64(5), false}, "runs_pkey"},
			{"insert", sqlInsert, insertArgs(k, now), "runs_key"},
			{"get by keys", sqlGetByKeys, []any{fill(k, "key")}, "runs_key"},
			{"get for update", sqlGetForUpdate, []any{"r00001"}, "runs_id_key"},
			{"list active of a server", sqlListActiveServer, []any{"srv"}, "active_server"},
			{"list active", sqlListActive, nil, "runs_pkey"},
			{"next pending", sqlNextPendingAt, nil, "pending_order"},
			{"log list", sqlLogList, []any{"r1", int64(0), int64(k)}, "run_logs_run"},
			{"fan-out parent", sqlFanoutParent, []any{"p", "", "t", "g", "{}", int32(0), int32(1), "k", now, now, now,
				int64(0), "", "", int32(3), "http://x/"}, "Conflict Resolution: NOTHING"},
			{"fan-out children", sqlFanoutChildren, append(insertArgs(k, now), fill(k, ""), fill(k, "http://x/"), int32(k)),
				"Insert on runs"},
			{"fan-out get", sqlFanoutGet, []any{"p"}, "fanouts_pkey"},
			{"fan-out get: deltas", sqlFanoutGet, []any{"p"}, "fanout_deltas_parent"},
			{"fan-out fold", strings.TrimSuffix(sqlFoldFanouts, "; "), nil, "fanouts_pkey"},
			{"fan-out fold: deltas", strings.TrimSuffix(sqlFoldFanouts, "; "), nil, "fanout_deltas_parent"},
			{"fan-out set merge", sqlFanoutSetMerge, []any{"p", "m"}, "fanouts_pkey"},
			{"fan-out finish", sqlFanoutFinish, []any{"p", "succeeded", now, "{}", ""}, "runs_id_key"},
			{"fan-out finish: job_live", sqlFanoutFinish, []any{"p", "succeeded", now, "{}", ""}, "job_live_pkey"},
			{"fan-out finish: fanouts", sqlFanoutFinish, []any{"p", "succeeded", now, "{}", ""}, "fanouts_pkey"},
			{"fan-out done", sqlFanoutDone, []any{"p"}, "fanouts_pkey"},
			{"fan-out expand", sqlFanoutExpand, []any{"p", int32(1), "srv", now, int32(3)}, "runs_id_key"},
			{"fan-out expand: active", sqlFanoutExpandRow, []any{int64(5), "p", int32(3), int32(3), "", int32(0)}, "active_pkey"},
			{"set splits", sqlSetSplits, []any{fill(k, int64(1)), fill(k, `{"shards":3}`)}, "runs_pkey"},
			{"fan-out results", sqlFanoutResults, []any{"p", int32(0), int64(k)}, "runs_parent_shard"},
			{"fan-out joinable", sqlFanoutJoinable, []any{int64(k)}, "fanouts_open"},
			{"fan-out joinable: deltas", sqlFanoutJoinable, []any{int64(k)}, "fanout_deltas_parent"},
			{"fan-out joinable: runs", sqlFanoutJoinable, []any{int64(k)}, "runs_id_key"},
		}
		for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
			for _, c := range cases {
				plan := explain(t, s, mode, c.sql, c.args)
				if os.Getenv("SHOWPLANS") != "" || strings.Contains(plan, "Seq Scan") || !strings.Contains(plan, c.want) {
					t.Errorf("%s, %d rows, %s: plan does not use %s, or scans runs:\n%s", c.name, k, mode, c.want, plan)
				} else if testing.Verbose() {
					t.Logf("%s, %d rows, %s:\n%s", c.name, k, mode, plan)
				}
			}
		}
	}
}

// explain returns the plan of sql, prepared, with args, under the write
// transactions' settings and plan_cache_mode mode.
func explain(t *testing.T, s *Store, mode, sql string, args []any) string {
	t.Helper()
	return explainUnder(t, s, beginSQL, mode, sql, args)
}

// explainUnder is explain in a transaction begun with begin.
func explainUnder(t *testing.T, s *Store, begin, mode, sql string, args []any) string {
	t.Helper()
	ctx := context.Background()
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	defer conn.Exec(ctx, "ROLLBACK")
	defer conn.Exec(ctx, "DEALLOCATE p")
	if _, err := conn.Exec(ctx, begin+"; SET LOCAL plan_cache_mode = "+mode+"; PREPARE p AS "+sql); err != nil {
		t.Fatalf("PREPARE %s: %v", sql, err)
	}
	params := make([]string, len(args))
	for i, a := range args {
		params[i] = literal(a)
	}
	q := "EXPLAIN EXECUTE p"
	if len(args) > 0 {
		q += "(" + strings.Join(params, ", ") + ")"
	}
	rows, err := conn.Query(ctx, q)
	if err != nil {
		t.Fatalf("%s for %s: %v", q, sql, err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("%s for %s: %v", q, sql, err)
	}
	return strings.Join(lines, "\n")
}

// insertArgs are the arguments of sqlInsert for k runs.
func insertArgs(k int, now time.Time) []any {
	s := func(v string) []string {
		out := make([]string, k)
		for i := range out {
			out[i] = v
		}
		return out
	}
	ids := make([]string, k)
	for i := range ids {
		ids[i] = fmt.Sprintf("new%05d", i)
	}
	ints := make([]int32, k)
	int8s := make([]int64, k)
	times := make([]time.Time, k)
	for i := range times {
		times[i] = now
	}
	return []any{ids, s(""), s(""), ints, s("t"), s("g"), s("{}"), ints, s("queued"), ints, s("k"), times, times, times, int8s, s(""), s("")}
}

// literal renders a statement argument as an SQL literal.
func literal(v any) string {
	elem := func(v any) string {
		switch v := v.(type) {
		case string:
			return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`
		case time.Time:
			return `"` + v.Format(time.RFC3339Nano) + `"`
		}
		return fmt.Sprint(v)
	}
	quote := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	switch v := v.(type) {
	case string:
		return quote(v)
	case time.Time:
		return quote(v.Format(time.RFC3339Nano))
	case int64, int32, bool:
		return fmt.Sprint(v)
	case []int64:
		var es []string
		for _, e := range v {
			es = append(es, fmt.Sprint(e))
		}
		return quote("{" + strings.Join(es, ",") + "}")
	case []string, []int32, []time.Time:
		var es []string
		switch v := v.(type) {
		case []string:
			for _, e := range v {
				es = append(es, elem(e))
			}
		case []int32:
			for _, e := range v {
				es = append(es, elem(e))
			}
		case []time.Time:
			for _, e := range v {
				es = append(es, elem(e))
			}
		}
		return quote("{" + strings.Join(es, ",") + "}")
	}
	panic(fmt.Sprintf("literal of %T", v))
}

func TestNotificationEncoding(t *testing.T) {
	ns := []store.Notification{
		{Topic: "queued", Payload: "g1"},
		{Topic: "queued", Payload: ""},
		{Topic: "x", Payload: "a:b\nc\\n\x00d\\"},
		{Topic: "finished", Payload: strings.Repeat("r", 3000)},
		{Topic: "finished", Payload: strings.Repeat("s", 3000)},
		{Topic: "finished", Payload: strings.Repeat("t", 3000)},
	}
	var lines []string
	for _, n := range ns {
		lines = append(lines, n.Topic+":"+payloadEscaper.Replace(n.Payload))
	}
	msgs := encodeNotifications(lines, maxMessage)
	if len(msgs) != 2 {
		t.Errorf("%d messages, want 2", len(msgs))
	}
	var got []store.Notification
	for _, m := range msgs {
		if len(m) > maxMessage {
			t.Errorf("message of %d bytes", len(m))
		}
		decodeNotifications(m, func(n store.Notification) { got = append(got, n) })
	}
	if fmt.Sprint(got) != fmt.Sprint(ns) {
		t.Errorf("round trip:\n got %q\nwant %q", got, ns)
	}
}

func TestChannelName(t *testing.T) {
	if c := channelName("pluto"); c != "pluto_pluto" {
		t.Errorf("channelName(pluto) = %q", c)
	}
	long := strings.Repeat("a", 63)
	c := channelName(long)
	if len(c) > 63 || c == channelName(strings.Repeat("a", 62)+"b") {
		t.Errorf("channelName of a long schema: %q", c)
	}
}

func TestSplitSchema(t *testing.T) {
	for _, c := range []struct{ in, out, schema string }{
		{"postgres://u@h/db?sslmode=disable&schema=abc", "postgres://u@h/db?sslmode=disable", "abc"},
		{"postgresql://u:p@h:5/db?schema=x_1", "postgresql://u:p@h:5/db", "x_1"},
		{"postgres://u@h/db", "postgres://u@h/db", ""},
		{"host=h user=u", "host=h user=u", ""},
	} {
		out, schema, err := splitSchema(c.in)
		if err != nil || out != c.out || schema != c.schema {
			t.Errorf("splitSchema(%q) = %q, %q, %v; want %q, %q", c.in, out, schema, err, c.out, c.schema)
		}
	}
}
