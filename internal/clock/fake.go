package clock

import (
	"sort"
	"sync"
	"time"
)

// Fake is a manually advanced clock. Timers fire (each in its own
// goroutine, like time.AfterFunc) when Advance moves time past their due.
type Fake struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

// NewFake returns a fake clock set to start.
func NewFake(start time.Time) *Fake { return &Fake{now: start} }

func (c *Fake) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *Fake) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, f: f, due: c.now.Add(d), active: true, listed: true}
	c.timers = append(c.timers, t)
	return t
}

// Advance moves time forward by d and fires every timer that came due, in
// due order. It returns after starting their goroutines.
func (c *Fake) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*fakeTimer
	keep := c.timers[:0]
	for _, t := range c.timers {
		switch {
		case t.active && !t.due.After(c.now):
			t.active, t.listed = false, false
			due = append(due, t)
		case t.active:
			keep = append(keep, t)
		default:
			t.listed = false
		}
	}
	c.timers = keep
	c.mu.Unlock()
	sort.Slice(due, func(i, j int) bool { return due[i].due.Before(due[j].due) })
	for _, t := range due {
		go t.f()
	}
}

// Pending returns how many timers are armed.
func (c *Fake) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if t.active {
			n++
		}
	}
	return n
}

type fakeTimer struct {
	c      *Fake
	f      func()
	due    time.Time
	active bool
	listed bool // in c.timers
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.active
	t.active = false
	return was
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.active
	t.due = t.c.now.Add(d)
	t.active = true
	if !t.listed {
		t.listed = true
		t.c.timers = append(t.c.timers, t)
	}
	return was
}
