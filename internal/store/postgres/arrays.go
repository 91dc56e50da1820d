package postgres

import (
	"encoding/binary"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// The batch statements bind one array per column, hundreds of elements
// each. pgx encodes array elements one at a time through interfaces and
// reflection, which cost about a fifth of the client's CPU on the write
// path; fastArrays encodes the few slice types the store binds directly
// into PostgreSQL's binary array format, and leaves every other value to
// pgx's codec.

// registerFastArrays wraps the codecs of the array types the store binds.
func registerFastArrays(m *pgtype.Map) {
	for _, oid := range []uint32{pgtype.TextArrayOID, pgtype.Int4ArrayOID, pgtype.Int8ArrayOID, pgtype.TimestamptzArrayOID} {
		t, ok := m.TypeForOID(oid)
		if !ok {
			continue
		}
		if _, done := t.Codec.(fastArrays); done {
			continue
		}
		m.RegisterType(&pgtype.Type{Name: t.Name, OID: t.OID, Codec: fastArrays{Codec: t.Codec, oid: oid}})
	}
}

// fastArrays is an array type's codec with a fast binary encoding of the
// store's slice types.
type fastArrays struct {
	pgtype.Codec
	oid uint32
}

func (c fastArrays) PlanEncode(m *pgtype.Map, oid uint32, format int16, value any) pgtype.EncodePlan {
	if format == pgtype.BinaryFormatCode {
		ok := false
		switch value.(type) {
		case []string, []pgtype.Text:
			ok = c.oid == pgtype.TextArrayOID
		case []int32, []pgtype.Int4:
			ok = c.oid == pgtype.Int4ArrayOID
		case []int64:
			ok = c.oid == pgtype.Int8ArrayOID
		case []time.Time, []pgtype.Timestamptz:
			ok = c.oid == pgtype.TimestamptzArrayOID
		}
		if ok {
			return encodeArray{}
		}
	}
	return c.Codec.PlanEncode(m, oid, format, value)
}

type encodeArray struct{}

func (encodeArray) Encode(value any, buf []byte) ([]byte, error) {
	switch v := value.(type) {
	case []string:
		buf = arrayHeader(buf, pgtype.TextOID, len(v), false)
		for _, s := range v {
			buf = binary.BigEndian.AppendUint32(buf, uint32(len(s)))
			buf = append(buf, s...)
		}
	case []pgtype.Text:
		buf = arrayHeader(buf, pgtype.TextOID, len(v), hasNull(v, func(e pgtype.Text) bool { return !e.Valid }))
		for _, s := range v {
			if !s.Valid {
				buf = binary.BigEndian.AppendUint32(buf, 0xffffffff)
				continue
			}
			buf = binary.BigEndian.AppendUint32(buf, uint32(len(s.String)))
			buf = append(buf, s.String...)
		}
	case []int32:
		buf = arrayHeader(buf, pgtype.Int4OID, len(v), false)
		for _, n := range v {
			buf = binary.BigEndian.AppendUint32(buf, 4)
			buf = binary.BigEndian.AppendUint32(buf, uint32(n))
		}
	case []pgtype.Int4:
		buf = arrayHeader(buf, pgtype.Int4OID, len(v), hasNull(v, func(e pgtype.Int4) bool { return !e.Valid }))
		for _, n := range v {
			if !n.Valid {
				buf = binary.BigEndian.AppendUint32(buf, 0xffffffff)
				continue
			}
			buf = binary.BigEndian.AppendUint32(buf, 4)
			buf = binary.BigEndian.AppendUint32(buf, uint32(n.Int32))
		}
	case []int64:
		buf = arrayHeader(buf, pgtype.Int8OID, len(v), false)
		for _, n := range v {
			buf = binary.BigEndian.AppendUint32(buf, 8)
			buf = binary.BigEndian.AppendUint64(buf, uint64(n))
		}
	case []time.Time:
		buf = arrayHeader(buf, pgtype.TimestamptzOID, len(v), false)
		for _, t := range v {
			buf = binary.BigEndian.AppendUint32(buf, 8)
			buf = binary.BigEndian.AppendUint64(buf, uint64(pgMicros(t)))
		}
	case []pgtype.Timestamptz:
		buf = arrayHeader(buf, pgtype.TimestamptzOID, len(v), hasNull(v, func(e pgtype.Timestamptz) bool { return !e.Valid }))
		for _, t := range v {
			if !t.Valid {
				buf = binary.BigEndian.AppendUint32(buf, 0xffffffff)
				continue
			}
			buf = binary.BigEndian.AppendUint32(buf, 8)
			buf = binary.BigEndian.AppendUint64(buf, uint64(pgMicros(t.Time)))
		}
	}
	return buf, nil
}

// arrayHeader appends the header of a one-dimensional array of n
// elements (as pgx writes it, an empty one included).
func arrayHeader(buf []byte, elem uint32, n int, nulls bool) []byte {
	hasNulls := uint32(0)
	if nulls {
		hasNulls = 1
	}
	buf = binary.BigEndian.AppendUint32(buf, 1) // dimensions
	buf = binary.BigEndian.AppendUint32(buf, hasNulls)
	buf = binary.BigEndian.AppendUint32(buf, elem)
	buf = binary.BigEndian.AppendUint32(buf, uint32(n))
	return binary.BigEndian.AppendUint32(buf, 1) // lower bound
}

func hasNull[E any](v []E, null func(E) bool) bool {
	for _, e := range v {
		if null(e) {
			return true
		}
	}
	return false
}

// pgEpoch is PostgreSQL's time zero, 2000-01-01 UTC, in Unix microseconds.
const pgEpoch = 946684800 * 1_000_000

// pgMicros is t in microseconds since 2000-01-01 UTC, truncated as pgx
// truncates.
func pgMicros(t time.Time) int64 {
	return t.Unix()*1_000_000 + int64(t.Nanosecond())/1000 - pgEpoch
}
