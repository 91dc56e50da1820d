package engine

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/pluto-sched/pluto/internal/apijson"
	"github.com/pluto-sched/pluto/internal/store"
	"github.com/pluto-sched/pluto/internal/store/sqlite"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeConn records what the engine sends to one worker.
type fakeConn struct {
	mu       sync.Mutex
	tasks    []Task
	cancels  []RunRef
	acks     []ResultAck
	capped   []RunRef // LogsCapped
	drains   []bool
	shutdown []bool
	commands []sentCommand
	mapAcks  []MapAck
	closed   string
}

func (c *fakeConn) MapAck(a MapAck) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mapAcks = append(c.mapAcks, a)
}

func (c *fakeConn) MapAcks() []MapAck {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.mapAcks)
}

// sentCommand is a remote command the engine sent to a fakeConn.
type sentCommand struct {
	ID, Name string
	Args     string
	Timeout  time.Duration
}

func (c *fakeConn) Command(id, name string, args json.RawMessage, timeout time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.commands = append(c.commands, sentCommand{ID: id, Name: name, Args: string(args), Timeout: timeout})
}

func (c *fakeConn) Commands() []sentCommand {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]sentCommand(nil), c.commands...)
}

func (c *fakeConn) Drains() []bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]bool(nil), c.drains...)
}

func (c *fakeConn) Shutdowns() []bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]bool(nil), c.shutdown...)
}

func (c *fakeConn) Dispatch(ts []Task) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tasks = append(c.tasks, ts...)
}
func (c *fakeConn) Cancel(r RunRef, _ string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cancels = append(c.cancels, r)
}
func (c *fakeConn) ResultAcks(a []ResultAck) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.acks = append(c.acks, a...)
}
func (c *fakeConn) LogsCapped(refs []RunRef) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.capped = append(c.capped, refs...)
}
func (c *fakeConn) Capped() []RunRef {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]RunRef(nil), c.capped...)
}
func (c *fakeConn) Drain(resume bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.drains = append(c.drains, resume)
}
func (c *fakeConn) Shutdown(restart bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.shutdown = append(c.shutdown, restart)
}
func (c *fakeConn) Close(reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed == "" {
		c.closed = reason
	}
}

func (c *fakeConn) Tasks() []Task {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Task(nil), c.tasks...)
}
func (c *fakeConn) Cancels() []RunRef {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]RunRef(nil), c.cancels...)
}
func (c *fakeConn) Acks() []ResultAck {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]ResultAck(nil), c.acks...)
}
func (c *fakeConn) Closed() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// env is one engine on a real SQLite store inside a synctest bubble.
type env struct {
	t   *testing.T
	ctx context.Context
	e   *Engine
	st  store.Store
	dir string
}

func openStore(t *testing.T, dir string) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "pluto.db"), sqlite.Options{Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func testConfig(st store.Store) Config {
	// SQLite is an exclusive store; the multi-server tests say otherwise.
	return Config{Store: st, ServerID: "s1", HeartbeatInterval: time.Second, RetryBase: time.Second, RetryMax: 8 * time.Second, ExclusiveStore: true,
		CallbackBody: func(r *store.Run) ([]byte, error) { return json.Marshal(apijson.FromRun(r)) }}
}

// newEnv starts an engine; mod may adjust its config.
func newEnv(t *testing.T, mod func(*Config)) *env {
	t.Helper()
	dir := t.TempDir()
	st := openStore(t, dir)
	t.Cleanup(func() { st.Close() })
	en := &env{t: t, ctx: context.Background(), st: st, dir: dir}
	en.e = en.start(st, mod)
	return en
}

func (en *env) start(st store.Store, mod func(*Config)) *Engine {
	cfg := testConfig(st)
	if mod != nil {
		mod(&cfg)
	}
	e, err := New(cfg)
	if err != nil {
		en.t.Fatal(err)
	}
	if err := e.Start(en.ctx); err != nil {
		en.t.Fatal(err)
	}
	en.t.Cleanup(func() { e.Stop(context.Background()) })
	return e
}

func (en *env) connect(id string, window int, types ...string) (*Session, *fakeConn) {
	en.t.Helper()
	return en.connectHeld(id, window, nil, types...)
}

// connectSilent connects a worker that never heartbeats.
func (en *env) connectSilent(id string, window int) (*Session, *fakeConn) {
	en.t.Helper()
	return en.connectOpts(id, window, nil, false)
}

func (en *env) connectHeld(id string, window int, held []RunRef, types ...string) (*Session, *fakeConn) {
	en.t.Helper()
	return en.connectOpts(id, window, held, true, types...)
}

// connectOpts connects a worker; a live one heartbeats every half
// interval until its session closes or the test ends.
func (en *env) connectOpts(id string, window int, held []RunRef, live bool, types ...string) (*Session, *fakeConn) {
	en.t.Helper()
	if len(types) == 0 {
		types = []string{"noop"}
	}
	c := &fakeConn{}
	s, stale, err := en.e.Connect(en.ctx, Hello{WorkerID: id, Group: "g", Capacity: window, Window: window, Types: types, Held: held}, c)
	if err != nil {
		en.t.Fatal(err)
	}
	if len(stale) > 0 {
		en.t.Logf("stale held runs: %v", stale)
	}
	if live {
		en.keepAlive(s)
	}
	synctest.Wait()
	return s, c
}

// keepAlive heartbeats for s every half interval until its session closes
// or the test ends.
func (en *env) keepAlive(s *Session) {
	stop := make(chan struct{})
	en.t.Cleanup(func() { close(stop) })
	e := en.e
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(500 * time.Millisecond):
			}
			e.disp.mu.Lock()
			closed := s.closed
			e.disp.mu.Unlock()
			if closed {
				return
			}
			s.Heartbeat(Load{})
		}
	}()
}

func (en *env) submit(specs ...SubmitSpec) []*store.Run {
	en.t.Helper()
	for i := range specs {
		if specs[i].Type == "" {
			specs[i].Type = "noop"
		}
		if specs[i].Group == "" {
			specs[i].Group = "g"
		}
	}
	res, err := en.e.Submit(en.ctx, specs)
	if err != nil {
		en.t.Fatal(err)
	}
	synctest.Wait()
	out := make([]*store.Run, len(res))
	for i, r := range res {
		out[i] = r.Run
	}
	return out
}

func (en *env) get(id string) *store.Run {
	en.t.Helper()
	r, err := en.st.RunGet(en.ctx, id)
	if err != nil {
		en.t.Fatal(err)
	}
	return r
}

func (en *env) wantStatus(id string, want store.RunStatus) *store.Run {
	en.t.Helper()
	r := en.get(id)
	if r.Status != want {
		en.t.Fatalf("run %s: status %s, want %s (attempt %d, error %q)", id, r.Status, want, r.Attempt, r.Error)
	}
	return r
}

// finish reports results for tasks and waits for the engine to settle.
func finish(s *Session, outcome Outcome, tasks ...Task) {
	rs := make([]Result, len(tasks))
	for i, t := range tasks {
		rs[i] = Result{RunID: t.RunID, Attempt: t.Attempt, Outcome: outcome, Result: []byte(`{"ok":true}`), Error: map[bool]string{true: "boom"}[outcome != OutcomeSucceeded]}
	}
	s.Results(rs)
	synctest.Wait()
}

func ack(s *Session, tasks ...Task) {
	as := make([]Ack, len(tasks))
	for i, t := range tasks {
		as[i] = Ack{RunID: t.RunID, Attempt: t.Attempt}
	}
	s.Ack(as)
	synctest.Wait()
}

func ids(ts []Task) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.RunID
	}
	return out
}
