package apijson

import (
	"encoding/json"
	"strconv"
)

// AppendJSON appends s encoded exactly as encoding/json encodes it (the
// test compares them), without reflection or the re-compaction
// encoding/json applies to every MarshalJSON's output: with the counters
// of 400 jobs that was 5-6 ms of the answer, more than reading them from
// the store. The server writes any value that has this method this way.
func (s Stats) AppendJSON(b []byte) []byte {
	b = append(b, `{"groups":`...)
	if s.Groups == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range s.Groups {
			if i > 0 {
				b = append(b, ',')
			}
			b = s.Groups[i].appendJSON(b)
		}
		b = append(b, ']')
	}
	t := &s.Totals
	b = append(b, `,"totals":{"counts":`...)
	b = t.Counts.appendJSON(b)
	b = appendInt(append(b, `,"queue_depth":`...), t.QueueDepth)
	b = appendInt(append(b, `,"workers":`...), int64(t.Workers))
	b = appendInt(append(b, `,"slots":`...), int64(t.Slots))
	b = t.Throughput.appendJSON(append(b, `,"throughput":`...))
	b = appendInt(append(b, `},"callbacks_owed":`...), s.CallbacksOwed)
	return append(b, '}')
}

func (g *GroupStats) appendJSON(b []byte) []byte {
	b = appendString(append(b, `{"group":`...), g.Group)
	b = g.Counts.appendJSON(append(b, `,"counts":`...))
	b = appendInt(append(b, `,"queue_depth":`...), g.QueueDepth)
	b = appendFloat(append(b, `,"oldest_queued_age_seconds":`...), g.OldestQueuedAgeSeconds)
	b = appendInt(append(b, `,"workers":`...), int64(g.Workers))
	b = appendInt(append(b, `,"slots":`...), int64(g.Slots))
	b = g.Throughput.appendJSON(append(b, `,"throughput":`...))
	d := &g.DispatchLatencySeconds
	b = appendFloat(append(b, `,"dispatch_latency_seconds":{"p50":`...), d.P50)
	b = appendFloat(append(b, `,"p99":`...), d.P99)
	b = appendInt(append(b, `,"samples":`...), d.Samples)
	b = append(b, '}')
	if len(g.Jobs) > 0 {
		b = append(b, `,"jobs":[`...)
		for i := range g.Jobs {
			if i > 0 {
				b = append(b, ',')
			}
			j := &g.Jobs[i]
			b = appendString(append(b, `{"job":`...), j.Job)
			b = j.Counts.appendJSON(append(b, `,"counts":`...))
			b = j.Throughput.appendJSON(append(b, `,"throughput":`...))
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

func (t *Throughput) appendJSON(b []byte) []byte {
	b = t.LastMinute.appendJSON(append(b, `{"last_minute":`...))
	b = t.LastHour.appendJSON(append(b, `,"last_hour":`...))
	b = t.LastDay.appendJSON(append(b, `,"last_day":`...))
	return append(b, '}')
}

func appendInt(b []byte, n int64) []byte { return strconv.AppendInt(b, n, 10) }

// appendString appends s as a JSON string, as encoding/json writes it.
func appendString(b []byte, s string) []byte {
	if plainKey(s) {
		return append(append(append(b, '"'), s...), '"')
	}
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}

// appendFloat appends f as encoding/json writes it (its own formatting
// rules; the answer's floats are few).
func appendFloat(b []byte, f float64) []byte {
	q, err := json.Marshal(f)
	if err != nil { // NaN or an infinity: never produced; 0 keeps the document valid
		return append(b, '0')
	}
	return append(b, q...)
}
