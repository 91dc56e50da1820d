// Package jobfile reads job definitions as people write them — for pluto
// job apply and the web console's YAML editor: YAML or JSON; one job, a
// list of jobs, or several YAML documents (---) / concatenated JSON
// values. YAML is turned into JSON and every job is decoded the way the
// HTTP API decodes a PUT body (same snake_case names, unknown fields and
// wrong types are errors naming the field), so a file that passes here
// fails on the server only for what the server checks (names, policies,
// schedules, time zones, limits).
package jobfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/pluto-sched/pluto/internal/apijson"
)

// Doc is one job read from a file.
type Doc struct {
	Where string          // "document 2", "document 1, item 3": where in the file
	Raw   json.RawMessage // the job as JSON, to be sent as it is
	Job   apijson.Job
}

// Label names the job for messages: its name and where it is.
func (d Doc) Label() string {
	if d.Job.Name == "" {
		return d.Where
	}
	return fmt.Sprintf("%q (%s)", d.Job.Name, d.Where)
}

// Parse reads the jobs in data. asJSON says the file is named *.json.
func Parse(data []byte, asJSON bool) ([]Doc, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, errors.New("no jobs in the file (it is empty)")
	}
	// A file named *.json, or whose text starts like JSON, is read as
	// JSON (its errors then point at the line and column); anything else
	// as YAML.
	var (
		docs []json.RawMessage
		err  error
	)
	if asJSON || trimmed[0] == '{' || trimmed[0] == '[' {
		docs, err = jsonDocs(data)
	} else {
		docs, err = yamlDocs(data)
	}
	if err != nil {
		return nil, err
	}

	var out []Doc
	for i, doc := range docs {
		where := fmt.Sprintf("document %d", i+1)
		if len(docs) == 1 {
			where = "the file"
		}
		items, list, err := jobItems(doc)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", where, err)
		}
		for k, item := range items {
			w := where
			if list {
				w = fmt.Sprintf("item %d", k+1)
				if len(docs) > 1 {
					w = fmt.Sprintf("%s, item %d", where, k+1)
				}
			}
			d := Doc{Where: w, Raw: item}
			if err := decodeJob(item, &d.Job); err != nil {
				return nil, fmt.Errorf("job %s: %v", d.Label(), err)
			}
			if strings.TrimSpace(d.Job.Name) == "" {
				return nil, fmt.Errorf("job in %s: name: is required", w)
			}
			out = append(out, d)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no jobs in the file")
	}
	seen := map[string]string{}
	for _, d := range out {
		if prev, ok := seen[d.Job.Name]; ok {
			return nil, fmt.Errorf("job %q appears twice (%s and %s)", d.Job.Name, prev, d.Where)
		}
		seen[d.Job.Name] = d.Where
	}
	return out, nil
}

// jsonDocs splits concatenated JSON values.
func jsonDocs(data []byte) ([]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var docs []json.RawMessage
	for {
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if err == io.EOF {
			return docs, nil
		}
		if err != nil {
			var se *json.SyntaxError
			if errors.As(err, &se) {
				line, col := lineCol(data, se.Offset)
				return nil, fmt.Errorf("malformed JSON at line %d, column %d: %s", line, col, strings.TrimPrefix(se.Error(), "json: "))
			}
			return nil, fmt.Errorf("malformed JSON: %v", err)
		}
		docs = append(docs, raw)
	}
}

// yamlDocs reads every YAML document (empty ones are skipped) and turns
// each into JSON.
func yamlDocs(data []byte) ([]json.RawMessage, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []json.RawMessage
	for n := 1; ; n++ {
		var v any
		err := dec.Decode(&v)
		if err == io.EOF {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("malformed YAML: %v", strings.TrimPrefix(err.Error(), "yaml: "))
		}
		if v == nil {
			continue
		}
		j, err := yamlToJSON(v, "")
		if err != nil {
			return nil, fmt.Errorf("YAML document %d: %v", n, err)
		}
		raw, err := json.Marshal(j)
		if err != nil {
			return nil, fmt.Errorf("YAML document %d: %v", n, err)
		}
		docs = append(docs, raw)
	}
}

// yamlToJSON makes a decoded YAML value encodable as JSON: mapping keys
// become strings, and numbers JSON cannot hold are errors naming where.
func yamlToJSON(v any, path string) (any, error) {
	at := func() string {
		if path == "" {
			return "the document"
		}
		return path
	}
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			c, err := yamlToJSON(e, joinPath(path, k))
			if err != nil {
				return nil, err
			}
			out[k] = c
		}
		return out, nil
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			ks := fmt.Sprint(k)
			c, err := yamlToJSON(e, joinPath(path, ks))
			if err != nil {
				return nil, err
			}
			out[ks] = c
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			c, err := yamlToJSON(e, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	case float64:
		if math.IsInf(x, 0) || math.IsNaN(x) {
			return nil, fmt.Errorf("%s: %v is not a number JSON can hold", at(), x)
		}
		return x, nil
	case []byte: // !!binary
		return string(x), nil
	}
	return v, nil
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// jobItems returns the jobs in one document: the document itself, the
// elements of a list, or the items of {"items": [...]} (what
// pluto job ls -o json prints).
func jobItems(doc json.RawMessage) (items []json.RawMessage, list bool, err error) {
	t := bytes.TrimSpace(doc)
	if len(t) > 0 && t[0] == '[' {
		if err := json.Unmarshal(t, &items); err != nil {
			return nil, false, err
		}
		return items, true, nil
	}
	if len(t) == 0 || t[0] != '{' {
		return nil, false, fmt.Errorf("want a job (an object) or a list of jobs, got %s", apijson.KindOf(t))
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(t, &top); err != nil {
		return nil, false, err
	}
	_, cursor := top["next_cursor"]
	if raw, ok := top["items"]; ok && (len(top) == 1 || len(top) == 2 && cursor) {
		if err := json.Unmarshal(raw, &items); err != nil {
			return nil, false, fmt.Errorf("items: want a list of jobs, got %s", apijson.KindOf(raw))
		}
		return items, true, nil
	}
	return []json.RawMessage{doc}, false, nil
}

// decodeJob decodes one job strictly, naming the field at fault the way
// the server does.
func decodeJob(raw json.RawMessage, j *apijson.Job) error {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || t[0] != '{' {
		return fmt.Errorf("want an object, got %s", apijson.KindOf(t))
	}
	dec := json.NewDecoder(bytes.NewReader(t))
	dec.DisallowUnknownFields()
	err := dec.Decode(j)
	if err == nil {
		return nil
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fmt.Errorf("%s: must be %s, got %s", te.Field, apijson.TypeName(te.Type), te.Value)
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name = strings.Trim(name, `"`)
		return fmt.Errorf("%s: unknown field %q (the fields are those of the API's job object: name, type, group, payload, schedule, timezone, misfire, misfire_max, overlap, routing, priority, timeout, retries, depends_on, trigger_rule, shards, min_success, merge, paused, callback_url, keep, keep_last, alerts)", name, name)
	}
	return err
}

// lineCol turns a byte offset into a 1-based line and column.
func lineCol(b []byte, off int64) (line, col int) {
	off = max(0, min(off, int64(len(b))))
	prefix := b[:off]
	line = bytes.Count(prefix, []byte("\n")) + 1
	col = max(1, int(off)-(bytes.LastIndexByte(prefix, '\n')+1))
	return line, col
}
