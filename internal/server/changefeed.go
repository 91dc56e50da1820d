package server

import (
	"sync"
	"time"

	"github.com/pluto-sched/pluto/internal/engine"
	"github.com/pluto-sched/pluto/internal/store"
)

// changeFeed tells the console's live pages that runs changed: it sees
// what this server's engine commits (an engine Observer, beside the
// metrics) and wakes each subscriber, coalescing: a subscriber that has
// not yet taken the last wake-up gets no second one.
type changeFeed struct {
	mu   sync.Mutex
	subs map[chan struct{}]struct{}
}

func newChangeFeed() *changeFeed { return &changeFeed{subs: make(map[chan struct{}]struct{})} }

// Subscribe implements console.ChangeFeed.
func (f *changeFeed) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	f.mu.Lock()
	f.subs[ch] = struct{}{}
	f.mu.Unlock()
	return ch, func() {
		f.mu.Lock()
		delete(f.subs, ch)
		f.mu.Unlock()
	}
}

// changed wakes every subscriber (never blocks: the engine calls it with
// its locks held).
func (f *changeFeed) changed() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ch := range f.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// withFeed is the engine's Observer: the metrics, and the change feed for
// the events that change what the console shows.
type withFeed struct {
	engine.Observer
	feed *changeFeed
}

func (o withFeed) Submitted(g string, n int) {
	o.Observer.Submitted(g, n)
	o.feed.changed()
}

func (o withFeed) Started(g, t string, wait time.Duration) {
	o.Observer.Started(g, t, wait)
	o.feed.changed()
}

func (o withFeed) Finished(g, t string, s store.RunStatus, ran time.Duration) {
	o.Observer.Finished(g, t, s, ran)
	o.feed.changed()
}
