package sqlite

import (
	"database/sql"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

type scanner interface{ Scan(dest ...any) error }

const numRunCols = 32

// runRow receives one row of runCols on the read pool. Scanning into *any
// is database/sql's fast path (no reflection, no int-to-string-to-int round
// trips); decodeRun converts the driver values.
type runRow struct {
	vals [numRunCols]any
	ptrs [numRunCols]any
}

func newRunRow() *runRow {
	r := new(runRow)
	for i := range r.vals {
		r.ptrs[i] = &r.vals[i]
	}
	return r
}

func scanRun(sc scanner) (*Run, error) {
	return newRunRow().scan(sc)
}

func (rr *runRow) scan(sc scanner) (*Run, error) {
	if err := sc.Scan(rr.ptrs[:]...); err != nil {
		return nil, err
	}
	r := decodeRun(rr.vals[:])
	clear(rr.vals[:])
	return r, nil
}

// decodeRun builds a run from the values of one row of runCols.
func decodeRun[V any](vs []V) *Run {
	v := func(i int) any { return vs[i] }
	r := &Run{
		Seq:          asInt(v(0)),
		ID:           asString(v(1)),
		Job:          asString(v(2)),
		ParentID:     asString(v(3)),
		Type:         asString(v(5)),
		Group:        asString(v(6)),
		Payload:      asJSON(v(7)),
		Priority:     int(asInt(v(8))),
		Status:       store.RunStatus(asString(v(9))),
		Attempt:      int(asInt(v(10))),
		MaxAttempts:  int(asInt(v(11))),
		Failures:     int(asInt(v(12))),
		Key:          asString(v(13)),
		LogicalTime:  asTime(v(14)),
		RunAt:        asTime(v(15)),
		CreatedAt:    asTime(v(16)),
		StartedAt:    asTime(v(17)),
		FinishedAt:   asTime(v(18)),
		WorkerID:     asString(v(19)),
		ServerID:     asString(v(20)),
		Result:       asJSON(v(21)),
		Error:        asString(v(22)),
		Timeout:      time.Duration(asInt(v(23))),
		Routing:      asString(v(24)),
		RoutingKey:   asString(v(25)),
		CallbackURL:  asString(v(26)),
		Lost:         int(asInt(v(28))),
		DispatchedAt: asTime(v(29)),
		ShardCount:   int(asInt(v(30))),
		Split:        decodeSplit(v(31)),
	}
	if r.CallbackURL != "" {
		r.Callback = decodeCallback(asString(v(27)))
	}
	if v(4) != nil {
		n := int(asInt(v(4)))
		r.Shard = &n
	}
	return r
}

func asInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case float64:
		return int64(x)
	case string:
		n, _ := strconv.ParseInt(x, 10, 64)
		return n
	}
	return 0
}

func asString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	case int64:
		return strconv.FormatInt(x, 10)
	}
	return ""
}

func asJSON(v any) json.RawMessage {
	switch x := v.(type) {
	case string:
		if x == "" {
			return nil
		}
		return json.RawMessage(x)
	case []byte:
		if len(x) == 0 {
			return nil
		}
		return json.RawMessage(x)
	}
	return nil
}

// asTime decodes Unix microseconds; NULL is the zero time.
func asTime(v any) time.Time {
	if v == nil {
		return time.Time{}
	}
	return fromMicro(asInt(v))
}

// Run is store.Run; the alias keeps scanRun short.
type Run = store.Run

func scanRuns(rows *sql.Rows) ([]*Run, error) {
	defer rows.Close()
	var out []*Run
	rr := newRunRow()
	for rows.Next() {
		r, err := rr.scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// decodeCallback decodes the delivery state runCols returns for a run with
// a callback URL: [state, attempts, next_at, error, delivered_at], times in
// Unix microseconds or null.
func decodeCallback(s string) store.Callback {
	var v [5]any
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var raw []any
	if err := d.Decode(&raw); err != nil || len(raw) != len(v) {
		return store.Callback{}
	}
	copy(v[:], raw)
	num := func(x any) int64 {
		if n, ok := x.(json.Number); ok {
			i, _ := n.Int64()
			return i
		}
		return 0
	}
	tm := func(x any) time.Time {
		if x == nil {
			return time.Time{}
		}
		return fromMicro(num(x))
	}
	str, _ := v[0].(string)
	errText, _ := v[3].(string)
	return store.Callback{
		State:       store.CallbackState(str),
		Attempts:    int(num(v[1])),
		NextAt:      tm(v[2]),
		LastError:   errText,
		DeliveredAt: tm(v[4]),
	}
}
