package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"
)

// A Part is the payload of one child made by [Run.Map], encoded as JSON by
// encoding/json. A json.RawMessage is taken as already encoded and sent as
// it is. The server refuses a part over its payload limit (1 MiB by
// default).
type Part any

// MapOptions configure the fan-out made by [Run.Map]; they are those of a
// fan-out submitted with parts.
type MapOptions struct {
	// MinSuccess is how many children must succeed for the parent to
	// succeed: 0 for all of them, a whole number for that many (at most the
	// number of parts), or a fraction in (0, 1) for that share, rounded up.
	// Once more children have failed than that allows, the parent fails
	// and the children still going are cancelled.
	MinSuccess float64
	// Merge is the handler type of the reduce run: once the children have
	// ended, a run of that type gets their results ([Run.IsMerge],
	// [Run.MergeResults]) and its result is the parent's. "" for none: the
	// parent's result is then the list of the children's results, in part
	// order (null for a child that did not succeed).
	Merge string
}

// MapResult is the server's answer to [Run.Map].
type MapResult struct {
	// Children is the number of children the run has.
	Children int
	// Existing reports that an earlier Map of the run made them (the same
	// attempt, or an earlier one whose worker died after mapping): Map is
	// idempotent per run, and this call's parts were not used.
	Existing bool
}

// Limits of one [Run.Map]. The parts travel in a single message; their size
// is capped well under what the server takes in one, so that a Map the
// server would refuse fails here, before anything is sent.
const (
	MaxMapParts = 10000   // parts per Map
	MaxMapBytes = 8 << 20 // the parts' encoded JSON, all together
)

// Map makes the children of the run, one per part (each part is a child's
// payload), while its handler runs: map-reduce from inside a handler, when
// only the handler knows how to split the work (the files in a directory,
// the pages of a listing). It returns once the server has committed them.
//
// When the handler then returns nil, the run becomes the children's
// parent: it stays running and ends when they have, with their results or
// the result of the merge run (see [MapOptions]), not the one the handler
// set. A run maps once, whatever its attempts: if the handler fails and
// the run is retried (or its worker dies), the children go on running and
// the next attempt's Map gets them back (MapResult.Existing) rather than
// making new ones; if the run ends otherwise (failed for good, timed out,
// cancelled), its children still going are cancelled. A fan-out's child
// and a merge run cannot map; the server refuses them.
//
// Map waits for the server's answer until ctx ends (pass the handler's
// context), sending the request again after a reconnect and every 5 s
// while none comes: a request or answer lost with a connection would
// otherwise leave the handler waiting for good, and the server answers a
// repeated Map with the children the first one made. If ctx ends first,
// Map returns an error wrapping ctx.Err(). An answer refusing the Map (the
// attempt is no longer current, a part is too large) is returned as an
// error with the server's reason.
//
// With a Run made by [NewTestRun], Map validates the parts and calls
// TestRun.Map.
func (r *Run) Map(ctx context.Context, parts []Part, opt MapOptions) (MapResult, error) {
	enc, err := encodeParts(parts)
	if err != nil {
		return MapResult{}, err
	}
	if err := opt.check(len(parts)); err != nil {
		return MapResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return MapResult{}, fmt.Errorf("worker: Map: %w", err)
	}
	if m, ok := r.sink.(mapper); ok {
		return m.sendMap(ctx, r, enc, opt)
	}
	return MapResult{Children: len(parts)}, nil
}

// mapper makes a run's children for Run.Map: the Worker for the runs it
// dispatches, testSink for those of NewTestRun. parts are valid JSON.
type mapper interface {
	sendMap(ctx context.Context, r *Run, parts [][]byte, opt MapOptions) (MapResult, error)
}

// encodeParts checks the count of parts and encodes them, stopping at the
// first part that does not encode or goes over MaxMapBytes.
func encodeParts(parts []Part) ([][]byte, error) {
	switch {
	case len(parts) == 0:
		return nil, errors.New("worker: Map: no parts (at least one is needed)")
	case len(parts) > MaxMapParts:
		return nil, fmt.Errorf("worker: Map: %d parts; the limit is %d (MaxMapParts)", len(parts), MaxMapParts)
	}
	enc := make([][]byte, len(parts))
	total := 0
	for i, p := range parts {
		b, err := encodePart(p)
		if err != nil {
			return nil, fmt.Errorf("worker: Map: part %d: %w", i, err)
		}
		if total += len(b); total > MaxMapBytes {
			return nil, fmt.Errorf("worker: Map: part %d: the parts up to it are %d bytes encoded; the limit is %d (MaxMapBytes)", i, total, MaxMapBytes)
		}
		enc[i] = b
	}
	return enc, nil
}

func encodePart(p Part) ([]byte, error) {
	raw, ok := p.(json.RawMessage)
	if !ok {
		return json.Marshal(p)
	}
	if len(raw) == 0 {
		return []byte("null"), nil // as json.Marshal encodes it
	}
	if !json.Valid(raw) {
		return nil, errors.New("invalid JSON")
	}
	// A copy: the message may still be waiting to be sent after Map
	// returned (its ctx ended), when the caller may reuse the bytes.
	return bytes.Clone(raw), nil
}

// check reports options the server would refuse for n parts. Merge in
// particular must be UTF-8: it is a protobuf string, and a Map that cannot
// be encoded would break the stream on every resend.
func (o MapOptions) check(n int) error {
	v := o.MinSuccess
	switch {
	case v < 0 || math.IsNaN(v) || math.IsInf(v, 0):
		return fmt.Errorf("worker: Map: MinSuccess %v: must be 0 (all), a count of children, or a fraction in (0, 1)", v)
	case v >= 1 && (v != math.Trunc(v) || v > float64(n)):
		return fmt.Errorf("worker: Map: MinSuccess %v: must be a whole number of children up to %d, or a fraction in (0, 1)", v, n)
	}
	if !utf8.ValidString(o.Merge) || strings.IndexByte(o.Merge, 0) >= 0 {
		return errors.New("worker: Map: Merge must be UTF-8 text without NUL bytes")
	}
	return nil
}

// sendMap is Run.Map for a test run: TestRun.Map decides, or the children
// are taken as made.
func (s *testSink) sendMap(_ context.Context, _ *Run, parts [][]byte, opt MapOptions) (MapResult, error) {
	if s.mapFn == nil {
		return MapResult{Children: len(parts)}, nil
	}
	raw := make([]json.RawMessage, len(parts))
	for i, p := range parts {
		raw[i] = p
	}
	return s.mapFn(raw, opt)
}
