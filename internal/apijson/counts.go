package apijson

import (
	"slices"
	"strconv"
)

// Counts are numbers by status name. They marshal like a map[string]int64
// (keys in sorted order), written directly: GET /api/v1/stats holds four
// of them per job, and the reflective map encoder made the answer's
// encoding cost more than reading it from the store (2,000 counters: 4 ms).
type Counts map[string]int64

// MarshalJSON implements json.Marshaler.
func (c Counts) MarshalJSON() ([]byte, error) {
	return c.appendJSON(make([]byte, 0, 2+len(c)*24)), nil
}

// appendJSON appends c as encoding/json writes a map[string]int64.
func (c Counts) appendJSON(b []byte) []byte {
	if c == nil {
		return append(b, "null"...)
	}
	if out, ok := c.appendKnown(b); ok {
		return out
	}
	var buf [16]string
	keys := buf[:0]
	for k := range c {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		b = strconv.AppendInt(b, c[k], 10)
	}
	return append(b, '}')
}

// statusKeys are the run statuses in sorted order: the keys of nearly
// every Counts.
var statusKeys = []string{"blocked", "cancelled", "dispatched", "failed", "pending", "queued", "running", "skipped", "succeeded", "timed_out"}

// appendKnown appends c when every key of it is a status, in sorted order
// without sorting (GET /api/v1/stats holds four of these a job); false
// when c has another key.
func (c Counts) appendKnown(b []byte) ([]byte, bool) {
	start, n := len(b), 0
	b = append(b, '{')
	for _, k := range statusKeys {
		v, ok := c[k]
		if !ok {
			continue
		}
		if n > 0 {
			b = append(b, ',')
		}
		b = append(append(append(b, '"'), k...), '"', ':')
		b = strconv.AppendInt(b, v, 10)
		n++
	}
	if n != len(c) {
		return b[:start], false
	}
	return append(b, '}'), true
}

// plainKey reports whether k needs no escaping in a JSON string.
func plainKey(k string) bool {
	for i := 0; i < len(k); i++ {
		if c := k[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}
