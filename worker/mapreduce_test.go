package worker

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Parts and options are checked before anything is sent; the error names
// the offending part.
func TestMapValidation(t *testing.T) {
	big := json.RawMessage(`"` + strings.Repeat("x", MaxMapBytes/2) + `"`)
	tests := []struct {
		name  string
		parts []Part
		opt   MapOptions
		want  string
	}{
		{"no parts", nil, MapOptions{}, "no parts"},
		{"too many", make([]Part, MaxMapParts+1), MapOptions{}, "MaxMapParts"},
		{"too large", []Part{1, big, big}, MapOptions{}, "part 2: the parts up to it are"},
		{"unmarshalable", []Part{1, 2, 3, make(chan int)}, MapOptions{}, "part 3: json: unsupported type"},
		{"NaN", []Part{math.NaN()}, MapOptions{}, "part 0: json: unsupported value"},
		{"bad raw JSON", []Part{json.RawMessage(`{`)}, MapOptions{}, "part 0: invalid JSON"},
		{"negative MinSuccess", []Part{1}, MapOptions{MinSuccess: -1}, "MinSuccess -1"},
		{"MinSuccess over parts", []Part{1, 2}, MapOptions{MinSuccess: 3}, "up to 2"},
		{"fractional count", []Part{1, 2}, MapOptions{MinSuccess: 1.5}, "whole number"},
		{"bad Merge", []Part{1}, MapOptions{Merge: "a\xffb"}, "Merge must be UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewTestRun(TestRun{Map: func([]json.RawMessage, MapOptions) (MapResult, error) {
				t.Error("Map sent despite invalid input")
				return MapResult{}, nil
			}})
			_, err := r.Map(context.Background(), tt.parts, tt.opt)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "worker: Map: ") {
				t.Fatalf("Map error = %v; want one containing %q", err, tt.want)
			}
		})
	}
	ok := NewTestRun(TestRun{})
	if res, err := ok.Map(context.Background(), make([]Part, MaxMapParts), MapOptions{MinSuccess: 0.9}); err != nil || res.Children != MaxMapParts {
		t.Errorf("MaxMapParts nulls: %+v, %v", res, err)
	}
}

// A test run's Map calls TestRun.Map with the encoded parts; without one it
// reports the children made.
func TestTestRunMap(t *testing.T) {
	var gotParts []string
	var gotOpt MapOptions
	r := NewTestRun(TestRun{Map: func(parts []json.RawMessage, opt MapOptions) (MapResult, error) {
		for _, p := range parts {
			gotParts = append(gotParts, string(p))
		}
		gotOpt = opt
		return MapResult{Children: len(parts), Existing: true}, nil
	}})
	opt := MapOptions{MinSuccess: 1, Merge: "m"}
	res, err := r.Map(context.Background(), []Part{"a", json.RawMessage(nil), struct{ N int }{2}}, opt)
	if err != nil || res != (MapResult{Children: 3, Existing: true}) {
		t.Fatalf("Map = %+v, %v", res, err)
	}
	if want := []string{`"a"`, `null`, `{"N":2}`}; !cmp.Equal(gotParts, want) || gotOpt != opt {
		t.Errorf("hook got %q %+v; want %q %+v", gotParts, gotOpt, want, opt)
	}

	refused := NewTestRun(TestRun{Map: func([]json.RawMessage, MapOptions) (MapResult, error) {
		return MapResult{}, errors.New("refused")
	}})
	if _, err := refused.Map(context.Background(), []Part{1}, MapOptions{}); err == nil || err.Error() != "refused" {
		t.Errorf("hook error: %v", err)
	}
	if res, err := NewTestRun(TestRun{}).Map(context.Background(), []Part{1, 2}, MapOptions{}); err != nil || res != (MapResult{Children: 2}) {
		t.Errorf("no hook: %+v, %v", res, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := NewTestRun(TestRun{}).Map(ctx, []Part{1}, MapOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ctx: %v", err)
	}
}
