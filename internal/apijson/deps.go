package apijson

import (
	"bytes"
	"encoding/json"
	"errors"
)

// Dependency is one element of a job's depends_on: the upstream job's
// name, written as a plain string, or an object {"job": NAME, "window":
// DURATION} when the upstream runs on another schedule and its latest run
// in the window before the logical time counts (docs/workflows.md).
type Dependency struct {
	Job    string
	Window string // a duration such as "1d" or "6h"; "" for the same logical time
}

type dependencyObject struct {
	Job    string `json:"job"`
	Window string `json:"window,omitempty"`
}

// MarshalJSON writes a string, or an object when there is a window.
func (d Dependency) MarshalJSON() ([]byte, error) {
	if d.Window == "" {
		return json.Marshal(d.Job)
	}
	return json.Marshal(dependencyObject(d))
}

// UnmarshalJSON reads a string or an object with job and window (no
// other field).
func (d *Dependency) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		*d = Dependency{}
		return json.Unmarshal(b, &d.Job)
	}
	if len(b) == 0 || b[0] != '{' {
		return errors.New(`a dependency is a job name or {"job": NAME, "window": DURATION}`)
	}
	var o dependencyObject
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil {
		return err
	}
	*d = Dependency(o)
	return nil
}
