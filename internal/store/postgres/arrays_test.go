package postgres

import (
	"bytes"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// TestFastArrays: the fast encodings are byte for byte pgx's.
func TestFastArrays(t *testing.T) {
	t0 := time.Date(2026, 3, 4, 5, 6, 7, 891234567, time.FixedZone("X", 3600))
	values := []struct {
		oid   uint32
		value any
	}{
		{pgtype.TextArrayOID, []string{}},
		{pgtype.TextArrayOID, []string{"a", "", "ü✓", "x y"}},
		{pgtype.TextArrayOID, []pgtype.Text{{String: "a", Valid: true}, {}, {String: "", Valid: true}}},
		{pgtype.TextArrayOID, []pgtype.Text{{String: "a", Valid: true}}},
		{pgtype.Int4ArrayOID, []int32{0, -1, 1 << 30, -1 << 31}},
		{pgtype.Int4ArrayOID, []pgtype.Int4{{Int32: 5, Valid: true}, {}}},
		{pgtype.Int8ArrayOID, []int64{0, -1, 1 << 62}},
		{pgtype.Int8ArrayOID, []int64{}},
		{pgtype.TimestamptzArrayOID, []time.Time{t0, time.Unix(0, 0), time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC)}},
		{pgtype.TimestamptzArrayOID, []pgtype.Timestamptz{{Time: t0, Valid: true}, {}}},
	}
	plain := pgtype.NewMap()
	fast := pgtype.NewMap()
	registerFastArrays(fast)
	for _, v := range values {
		want, err := plain.Encode(v.oid, pgtype.BinaryFormatCode, v.value, nil)
		if err != nil {
			t.Fatalf("%T: pgx: %v", v.value, err)
		}
		plan := fast.PlanEncode(v.oid, pgtype.BinaryFormatCode, v.value)
		if _, ok := plan.(encodeArray); !ok {
			t.Errorf("%T: fast plan not used (%T)", v.value, plan)
		}
		got, err := fast.Encode(v.oid, pgtype.BinaryFormatCode, v.value, nil)
		if err != nil {
			t.Fatalf("%T: fast: %v", v.value, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%T %v:\n got %x\nwant %x", v.value, v.value, got, want)
		}
	}
	// Other values and formats still go to pgx's codec.
	if _, ok := fast.PlanEncode(pgtype.TextArrayOID, pgtype.BinaryFormatCode, []int32{1}).(encodeArray); ok {
		t.Error("fast plan for int32s as text[]")
	}
	if got, err := fast.Encode(pgtype.TextArrayOID, pgtype.TextFormatCode, []string{"a"}, nil); err != nil || string(got) != `{a}` {
		t.Errorf("text format: %q, %v", got, err)
	}
	registerFastArrays(fast) // twice is harmless
	if _, err := fast.Encode(pgtype.Int8ArrayOID, pgtype.BinaryFormatCode, []int64{1}, nil); err != nil {
		t.Error(err)
	}
}
