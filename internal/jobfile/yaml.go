package jobfile

import (
	"bytes"
	"encoding/json"
	"fmt"

	"go.yaml.in/yaml/v3"

	"github.com/pluto-sched/pluto/internal/apijson"
)

// yamlFields are the fields a job file sets, in the order YAML prints
// them; the server's own (next_fire, version, created_at, updated_at) are
// left out, since a PUT does not take them.
var yamlFields = []string{
	"name", "type", "group", "schedule", "timezone", "payload", "misfire", "misfire_max", "overlap",
	"routing", "priority", "timeout", "retries", "depends_on", "trigger_rule", "shards", "min_success", "merge", "paused", "callback_url",
	"keep", "keep_last", "alerts",
}

// YAML writes j as a job file that Parse reads back to the same job:
// every field a job file sets, in a fixed order, nulls left out.
func YAML(j apijson.Job) ([]byte, error) {
	b, err := json.Marshal(j)
	if err != nil {
		return nil, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return nil, err
	}
	doc := &yaml.Node{Kind: yaml.MappingNode}
	for _, k := range yamlFields {
		raw, ok := fields[k]
		if !ok || string(raw) == "null" {
			continue
		}
		var v any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber() // integers stay integers
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("jobfile: %s: %w", k, err)
		}
		var val yaml.Node
		if err := val.Encode(yamlValue(v)); err != nil {
			return nil, fmt.Errorf("jobfile: %s: %w", k, err)
		}
		doc.Content = append(doc.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: k}, &val)
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("jobfile: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("jobfile: %w", err)
	}
	return out.Bytes(), nil
}

// yamlValue turns json.Numbers into int64 or float64 for the YAML
// encoder, inside maps and lists too.
func yamlValue(v any) any {
	switch x := v.(type) {
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = yamlValue(e)
		}
	case []any:
		for i, e := range x {
			x[i] = yamlValue(e)
		}
	}
	return v
}
