package worker

import (
	"encoding/json"
	"errors"
	"fmt"
)

// IsMerge reports a merge run: the run that merges the results of a
// fan-out submitted with a merge type. Its payload holds the children's
// results (MergeResults).
func (r *Run) IsMerge() bool { return r.merge }

// MergeResults decodes the children's results of a merge run into v (a
// pointer to a slice: one element per child, in shard order; a child that
// did not succeed is null).
func (r *Run) MergeResults(v any) error {
	var in struct {
		Results json.RawMessage `json:"results"`
	}
	if err := json.Unmarshal(r.payload, &in); err != nil {
		return fmt.Errorf("worker: MergeResults: %w", err)
	}
	if len(in.Results) == 0 {
		return errors.New("worker: MergeResults: not a merge run")
	}
	return json.Unmarshal(in.Results, v)
}
