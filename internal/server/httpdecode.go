package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pluto-sched/pluto/internal/apijson"
	"github.com/pluto-sched/pluto/internal/dur"
	"github.com/pluto-sched/pluto/internal/store"
)

// Strict request decoding shared by the endpoints: bounded bodies, JSON
// errors that name the line, column and field.

// readBody reads a request body of at most limit bytes (413 above).
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, tooLarge("", "request body is %d bytes; the limit is %d", r.ContentLength, limit)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge("", "request body is larger than the limit of %d bytes", limit)
		}
		return nil, badRequest("", "reading request body: %v", err)
	}
	return body, nil
}

// checkJSON reports malformed JSON with where it broke.
func checkJSON(body []byte) error {
	if json.Valid(body) {
		return nil
	}
	var v any
	err := json.Unmarshal(body, &v)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line, col := lineCol(body, se.Offset)
		return badJSON("malformed JSON at line %d, column %d (byte %d): %s", line, col, se.Offset, strings.TrimPrefix(se.Error(), "json: "))
	}
	if err != nil {
		return badJSON("malformed JSON: %v", err)
	}
	return badJSON("malformed JSON")
}

// lineCol turns a byte offset into a 1-based line and column.
func lineCol(b []byte, off int64) (line, col int) {
	if off > int64(len(b)) {
		off = int64(len(b))
	}
	if off < 0 {
		off = 0
	}
	prefix := b[:off]
	line = bytes.Count(prefix, []byte("\n")) + 1
	col = int(off) - (bytes.LastIndexByte(prefix, '\n') + 1)
	if col < 1 {
		col = 1
	}
	return line, col
}

// decodeStrict decodes valid JSON into v, rejecting unknown fields and
// values of the wrong type with the field named.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		return nil
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		if field == "" {
			return badJSON("request body must be a JSON object, got %s", te.Value)
		}
		return badRequest(field, "%s must be %s, got %s", field, apijson.TypeName(te.Type), te.Value)
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name = strings.Trim(name, `"`)
		return badRequest(name, "unknown field %q", name)
	}
	return badJSON("malformed JSON: %v", err)
}

// parseDuration parses a duration ("90s", "1h30m", "3d", "1w"); a bare
// integer means seconds.
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n > math.MaxInt64/int64(time.Second) || n < math.MinInt64/int64(time.Second) {
			return 0, errors.New("out of range")
		}
		return time.Duration(n) * time.Second, nil
	}
	return dur.Parse(s)
}

func statusNames() string {
	names := make([]string, len(store.AllStatuses))
	for i, s := range store.AllStatuses {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}
