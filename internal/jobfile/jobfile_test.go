package jobfile

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pluto-sched/pluto/internal/apijson"
)

func TestParseJobFile(t *testing.T) {
	for _, c := range []struct {
		name  string
		data  string
		json  bool
		names []string
		err   string // a part of the error; "" means it parses
	}{
		{"yaml multi-doc", "---\nname: a\ntype: noop\n---\n\n---\nname: b\ntype: shell\nschedule: '@daily'\n...\n", false, []string{"a", "b"}, ""},
		{"yaml list", "- name: a\n  type: noop\n- {name: b, type: noop}\n", false, []string{"a", "b"}, ""},
		{"yaml flow in a list", "- {name: a, type: noop, payload: {cmd: echo}}", false, []string{"a"}, ""},
		{"starts like JSON", "{name: a, type: noop}", false, nil, "malformed JSON at line 1"},
		{"json one", `{"name":"a","type":"noop","payload":{"x":[1,2]}}`, true, []string{"a"}, ""},
		{"json list", `[{"name":"a","type":"noop"},{"name":"b","type":"noop"}]`, true, []string{"a", "b"}, ""},
		{"json stream", `{"name":"a","type":"noop"} {"name":"b","type":"noop"}`, false, []string{"a", "b"}, ""},
		{"ls -o json", `{"items":[{"name":"a","type":"noop","version":3,"next_fire":null}],"next_cursor":""}`, true, []string{"a"}, ""},
		{"bom", "\xef\xbb\xbfname: a\ntype: noop\n", false, []string{"a"}, ""},
		{"empty", "  \n", false, nil, "empty"},
		{"only separators", "---\n---\n", false, nil, "no jobs"},
		{"yaml unknown field", "name: a\ntype: noop\n---\nname: b\ntype: noop\ncolour: red\n", false, nil, `job "b" (document 2): colour: unknown field "colour"`},
		{"json unknown field", `[{"name":"a","type":"noop"},{"name":"b","type":"noop","cron":"@daily"}]`, true, nil, `job "b" (item 2): cron: unknown field`},
		{"wrong type", "name: a\ntype: noop\nretries: many\n", false, nil, "retries: must be an integer"},
		{"timeout number", "name: a\ntype: noop\ntimeout: 30\n", false, nil, "timeout: must be a string"},
		{"paused yes", "name: a\ntype: noop\npaused: 'yes'\n", false, nil, "paused: must be a boolean"},
		{"no name", "type: noop\n", false, nil, "name: is required"},
		{"duplicate", "name: a\ntype: noop\n---\nname: a\ntype: shell\n", false, nil, `job "a" appears twice (document 1 and document 2)`},
		{"scalar", "hello\n", false, nil, "want a job"},
		{"bad yaml", "name: a\n  type: noop\n", false, nil, "malformed YAML"},
		{"bad json", "{\"name\": \"a\",\n \"type\": }", true, nil, "malformed JSON at line 2"},
		{"bad json, not named .json", "{\"name\": \"a\",\n \"type\": }", false, nil, "malformed JSON at line 2"},
		{"infinity", "name: a\ntype: noop\npriority: .inf\n", false, nil, "priority"},
		{"items not a list", `{"items": 5}`, false, nil, "items: want a list"},
	} {
		docs, err := Parse([]byte(c.data), c.json)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: err %v, want %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		var names []string
		for _, d := range docs {
			names = append(names, d.Job.Name)
			if !json.Valid(d.Raw) {
				t.Errorf("%s: raw %q", c.name, d.Raw)
			}
		}
		if strings.Join(names, ",") != strings.Join(c.names, ",") {
			t.Errorf("%s: names %v, want %v", c.name, names, c.names)
		}
	}

	// YAML and JSON give the same JSON object.
	y, err := Parse([]byte("name: a\ntype: shell\npayload:\n  cmd: echo hi\n  n: 3\nschedule: \"0 0/1 * * * ?\"\ntimeout: 30m\nretries: 2\npaused: true\ndepends_on: []\n"), false)
	if err != nil {
		t.Fatal(err)
	}
	j, err := Parse([]byte(`{"name":"a","type":"shell","payload":{"cmd":"echo hi","n":3},"schedule":"0 0/1 * * * ?","timeout":"30m","retries":2,"paused":true,"depends_on":[]}`), true)
	if err != nil {
		t.Fatal(err)
	}
	var a, b map[string]any
	_ = json.Unmarshal(y[0].Raw, &a)
	_ = json.Unmarshal(j[0].Raw, &b)
	if ja, _ := json.Marshal(a); string(ja) != func() string { jb, _ := json.Marshal(b); return string(jb) }() {
		t.Errorf("YAML %s\nJSON %s", y[0].Raw, j[0].Raw)
	}

	// The example file.
	data, err := os.ReadFile(filepath.Join("..", "..", "examples", "jobs.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	docs, err := Parse(data, false)
	if err != nil {
		t.Fatalf("examples/jobs.yaml: %v", err)
	}
	if len(docs) != 3 || docs[0].Job.Schedule != "0 0/1 * * * ?" || docs[1].Job.Timezone != "Asia/Shanghai" ||
		docs[1].Job.Misfire != "once" || docs[1].Job.Overlap != "forbid" || docs[2].Job.Schedule != "" {
		t.Errorf("examples/jobs.yaml: %+v", docs)
	}
}

// A job written by YAML reads back as the same job.
func TestYAMLRoundTrip(t *testing.T) {
	routing, timeout, keep := "hash", "30m", "30d"
	in := []byte(`{"name":"nightly","type":"shell","group":"etl","schedule":"0 30 2 * * ?","timezone":"Asia/Shanghai",
		"payload":{"cmd":"echo hi","n":3,"big":12345678901234,"f":1.5,"list":[1,"two",null],"yes":"yes","empty":""},
		"misfire":"once","misfire_max":3,"overlap":"forbid","routing":"hash","priority":-2,"timeout":"30m","retries":4,
		"depends_on":["a","b"],"paused":true,"keep":"30d","keep_last":10}`)
	var j apijson.Job
	if err := json.Unmarshal(in, &j); err != nil {
		t.Fatal(err)
	}
	if *j.Routing != routing || *j.Timeout != timeout || *j.Keep != keep {
		t.Fatalf("fixture: %+v", j)
	}
	y, err := YAML(j)
	if err != nil {
		t.Fatal(err)
	}
	docs, err := Parse(y, false)
	if err != nil || len(docs) != 1 {
		t.Fatalf("Parse(YAML(j)) = %v, %v\n%s", docs, err, y)
	}
	a, _ := json.Marshal(j)
	b, _ := json.Marshal(docs[0].Job)
	var ma, mb any
	_ = json.Unmarshal(a, &ma)
	_ = json.Unmarshal(b, &mb)
	if ja, jb := mustJSON(ma), mustJSON(mb); ja != jb {
		t.Errorf("round trip changed the job:\n%s\n%s\nYAML:\n%s", ja, jb, y)
	}
	if !strings.HasPrefix(string(y), "name: nightly\ntype: shell\n") {
		t.Errorf("YAML does not start with the name and type:\n%s", y)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// Parse never panics and either fails or returns named jobs whose raw
// JSON is valid.
func FuzzParse(f *testing.F) {
	f.Add([]byte("name: a\ntype: noop\n"), false)
	f.Add([]byte(`[{"name":"a","type":"noop"}]`), true)
	f.Add([]byte("- {name: a, type: noop, payload: {x: .inf}}\n"), false)
	f.Add([]byte("a: &a [*a]\n"), false)
	f.Fuzz(func(t *testing.T, data []byte, asJSON bool) {
		if len(data) > 4096 {
			return
		}
		docs, err := Parse(data, asJSON)
		if err != nil {
			return
		}
		for _, d := range docs {
			if d.Job.Name == "" || !json.Valid(d.Raw) {
				t.Fatalf("%q: job %+v raw %q", data, d.Job, d.Raw)
			}
		}
	})
}
