package metrics

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pluto-sched/pluto/internal/store"
)

// A client inventing group names cannot grow the scrape without bound:
// past MaxLabelValues, new names share one series.
func TestInventedGroupsShareOneSeries(t *testing.T) {
	m := New()
	for i := range MaxLabelValues + 500 {
		m.Submitted(fmt.Sprintf("made-up-%d", i), 1)
		m.Finished(fmt.Sprintf("made-up-%d", i), "t", store.StatusSucceeded, time.Millisecond)
	}
	if n := testutil.CollectAndCount(m.submitted); n != MaxLabelValues+1 {
		t.Fatalf("%d submitted series, want %d (+1 for %s)", n, MaxLabelValues+1, otherLabel)
	}
	if got := testutil.ToFloat64(m.submitted.WithLabelValues(otherLabel)); got != 500 {
		t.Fatalf("%s counted %v, want 500", otherLabel, got)
	}
}

func TestCommitErrorsCountedNotTimed(t *testing.T) {
	m := New()
	m.Committed(10, time.Millisecond, nil)
	m.Committed(3, time.Second, fmt.Errorf("database is locked"))
	if got := testutil.ToFloat64(m.storeErrs.WithLabelValues("commit")); got != 1 {
		t.Fatalf("store errors %v, want 1", got)
	}
	if n := testutil.CollectAndCount(m.batchSize); n != 1 {
		t.Fatalf("batch size series %d", n)
	}
}
