package faultstore

import (
	"context"
	"sync"

	"github.com/pluto-sched/pluto/internal/store"
)

// Bus delivers notifications between the Stores that share it, as
// PostgreSQL's LISTEN/NOTIFY does between servers: what a transaction
// publishes (Tx.Notify) reaches every listener once the transaction
// commits, never if it rolls back, in commit order, the publisher's own
// listener included. A listener that is not listening (between Listen
// calls) misses what is published meanwhile, as a server whose
// notification connection broke does.
type Bus struct {
	mu   sync.Mutex
	subs map[*sub]struct{}
}

// NewBus makes an empty Bus.
func NewBus() *Bus { return &Bus{subs: make(map[*sub]struct{})} }

type sub struct {
	mu    sync.Mutex
	queue []store.Notification
	wake  chan struct{}
}

func (b *Bus) publish(ns []store.Notification) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		s.mu.Lock()
		s.queue = append(s.queue, ns...)
		s.mu.Unlock()
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// listen calls fn for every notification published until ctx ends (it
// returns ctx's error) or closing is closed (it returns nil).
func (b *Bus) listen(ctx context.Context, closing <-chan struct{}, fn func(store.Notification)) error {
	s := &sub{wake: make(chan struct{}, 1)}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.subs, s)
		b.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-closing:
			return nil
		case <-s.wake:
		}
		s.mu.Lock()
		ns := s.queue
		s.queue = nil
		s.mu.Unlock()
		for _, n := range ns {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			fn(n)
		}
	}
}
