package worker

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
)

// Mux is a [Handler] that dispatches each run to the handler registered for
// its type, like an http.ServeMux does by path. Its registered types are the
// handler types the worker announces to the server, so the server only
// dispatches runs the worker can process.
//
// Register handlers and middleware before the worker starts; Handle and Use
// are safe to call concurrently with ProcessRun, but a type added after the
// worker connected is announced on the next connection only.
type Mux struct {
	mu       sync.Mutex
	handlers map[string]Handler
	mws      []Middleware
	// table holds the handlers with the middleware already applied, rebuilt
	// on every Handle/Use so that dispatching allocates nothing.
	table atomic.Pointer[muxTable]
}

type muxTable struct {
	byType   map[string]Handler
	notFound Handler
}

// NewMux returns an empty Mux with the [Recover] middleware installed.
func NewMux() *Mux {
	m := &Mux{handlers: make(map[string]Handler), mws: []Middleware{Recover()}}
	m.rebuild()
	return m
}

// Handle registers h for runs of type typ. It panics if typ is empty, h is
// nil or typ is already registered.
func (m *Mux) Handle(typ string, h Handler) {
	if typ == "" {
		panic("worker: Mux.Handle: empty type")
	}
	if h == nil {
		panic("worker: Mux.Handle: nil handler for type " + typ)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.handlers == nil {
		m.handlers = make(map[string]Handler)
	}
	if _, dup := m.handlers[typ]; dup {
		panic("worker: Mux.Handle: type " + typ + " registered twice")
	}
	m.handlers[typ] = h
	m.rebuild()
}

// HandleFunc registers f for runs of type typ.
func (m *Mux) HandleFunc(typ string, f func(ctx context.Context, r *Run) error) {
	if f == nil {
		panic("worker: Mux.HandleFunc: nil func for type " + typ)
	}
	m.Handle(typ, HandlerFunc(f))
}

// Use appends middleware applied to every handler of the Mux (including the
// one answering unknown types). The first middleware is the outermost.
func (m *Mux) Use(mws ...Middleware) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mws = append(m.mws, mws...)
	m.rebuild()
}

// Types returns the registered run types, sorted.
func (m *Mux) Types() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	types := make([]string, 0, len(m.handlers))
	for t := range m.handlers {
		types = append(types, t)
	}
	slices.Sort(types)
	return types
}

// ProcessRun dispatches r to the handler for r.Type(). A run of an
// unregistered type fails with an error wrapping [ErrUnknownType].
func (m *Mux) ProcessRun(ctx context.Context, r *Run) error {
	t := m.table.Load()
	if t == nil { // zero Mux never configured
		return fmt.Errorf("%w %q", ErrUnknownType, r.Type())
	}
	if h, ok := t.byType[r.Type()]; ok {
		return h.ProcessRun(ctx, r)
	}
	return t.notFound.ProcessRun(ctx, r)
}

// rebuild must be called with m.mu held.
func (m *Mux) rebuild() {
	t := &muxTable{byType: make(map[string]Handler, len(m.handlers))}
	for typ, h := range m.handlers {
		t.byType[typ] = Chain(h, m.mws...)
	}
	t.notFound = Chain(HandlerFunc(func(_ context.Context, r *Run) error {
		return fmt.Errorf("%w %q", ErrUnknownType, r.Type())
	}), m.mws...)
	m.table.Store(t)
}
