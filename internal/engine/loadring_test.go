package engine

import "testing"

func TestLoadRingKeepsTheLastLoadsInOrder(t *testing.T) {
	var r loadRing
	if got := r.list(); len(got) != 0 {
		t.Fatalf("empty ring lists %v", got)
	}
	for i := range loadHistory + 7 {
		r.add(Load{Running: i})
	}
	got := r.list()
	if len(got) != loadHistory || got[0].Running != 7 || got[len(got)-1].Running != loadHistory+6 {
		t.Fatalf("ring lists %d loads, first %d, last %d", len(got), got[0].Running, got[len(got)-1].Running)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Running != got[i-1].Running+1 {
			t.Fatalf("out of order at %d: %v", i, got)
		}
	}
}
