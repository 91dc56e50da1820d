package server

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/pluto-sched/pluto/internal/engine"
	"github.com/pluto-sched/pluto/internal/executor"
	plutov1 "github.com/pluto-sched/pluto/internal/gen/pluto/v1"
	"github.com/pluto-sched/pluto/internal/store"
	"github.com/pluto-sched/pluto/worker"
)

// capEnv is a server capping logs at 1,000 lines, with one in-process
// worker serving "print" (20,000 lines from Go, paced), "one" (one line)
// and "shell".
type capEnv struct {
	t   *testing.T
	srv *Server
}

const (
	capLines   = 1000
	capPrinted = 20000
)

func startCapEnv(t *testing.T) *capEnv {
	t.Helper()
	cfg := Config{
		Store: "sqlite:" + filepath.Join(t.TempDir(), "pluto.db"), HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0",
		Logger: slog.New(slog.DiscardHandler),
	}
	cfg.Auth.Disabled = true
	cfg.Engine.LogMaxLines = capLines
	srv, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop(context.Background()) })
	mux := worker.NewMux()
	mux.HandleFunc("print", func(ctx context.Context, r *worker.Run) error {
		out := r.Output(worker.StreamStdout)
		for i := range capPrinted {
			fmt.Fprintf(out, "line-%d\n", i+1)
			if i%25 == 24 { // paced: the cap is known long before the end
				time.Sleep(time.Millisecond)
			}
		}
		return ctx.Err()
	})
	mux.HandleFunc("one", func(_ context.Context, r *worker.Run) error {
		fmt.Fprintln(r.Output(worker.StreamStdout), "one")
		return nil
	})
	mux.Handle(executor.TypeShell, executor.Shell(executor.ShellOptions{}))
	w, err := worker.New(worker.Options{
		Servers: []string{srv.GRPCAddr()}, ID: "w1", Capacity: 2, Handler: mux, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return &capEnv{t: t, srv: srv}
}

// run submits a run, waits for its end and returns its JSON's status and
// log_lines_dropped.
func (ce *capEnv) run(typ, payload string) (id, status string, dropped int64) {
	ce.t.Helper()
	res := stopHTTP(ce.t, http.MethodPost, ce.srv.HTTPURL()+"/api/v1/runs", `{"type":"`+typ+`","group":"default","payload":`+payload+`}`)
	var run struct {
		ID      string
		Status  string
		Dropped int64 `json:"log_lines_dropped"`
	}
	if res.status != http.StatusCreated || json.Unmarshal(res.body, &run) != nil {
		ce.t.Fatalf("submit: %d %s", res.status, res.body)
	}
	if res := stopHTTP(ce.t, http.MethodGet, ce.srv.HTTPURL()+"/api/v1/runs/"+run.ID+"/wait?timeout=60s", ""); res.status != http.StatusOK {
		ce.t.Fatalf("wait: %d %s", res.status, res.body)
	}
	res = stopHTTP(ce.t, http.MethodGet, ce.srv.HTTPURL()+"/api/v1/runs/"+run.ID, "")
	if err := json.Unmarshal(res.body, &run); err != nil {
		ce.t.Fatalf("get: %d %s", res.status, res.body)
	}
	return run.ID, run.Status, run.Dropped
}

// A run printing 20,000 lines under a cap of 1,000 keeps 1,000 and the
// marker and counts the 19,000 others exactly (final when it ends), and
// most of them never reach the server: its worker stops sending once
// told. The same for a Go handler's output and a shell command's.
func TestCappedRunStopsSending(t *testing.T) {
	ce := startCapEnv(t)
	for _, tc := range []struct {
		name, typ, payload, prefix string
	}{
		{"go", "print", "null", "line-"},
		// seq alone prints faster than any round trip: after the first
		// 2,000 lines the rest come in pieces of 1,000 every 0.2 s, so the
		// cap's notice has seconds to arrive (a loaded machine's log
		// writer took over 0.5 s to commit the first ones).
		{"shell", executor.TypeShell, `{"cmd":"seq 1 2000; i=2001; while [ $i -le 20000 ]; do sleep 0.2; seq $i $((i+999)); i=$((i+1000)); done"}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := ce.srv.workers.linesIn.Load()
			id, status, dropped := ce.run(tc.typ, tc.payload)
			received := ce.srv.workers.linesIn.Load() - before
			if status != "succeeded" || dropped != capPrinted-capLines {
				t.Errorf("run %s with %d lines dropped, want succeeded with %d", status, dropped, capPrinted-capLines)
			}
			logs, err := ce.srv.Store().LogList(context.Background(), store.LogListParams{RunID: id, Limit: 2 * capLines})
			if err != nil {
				t.Fatal(err)
			}
			if len(logs) != capLines+1 {
				t.Fatalf("%d lines stored, want %d and the marker", len(logs), capLines)
			}
			for i, l := range logs[:capLines] {
				if want := tc.prefix + strconv.Itoa(i+1); l.Text != want {
					t.Fatalf("line %d is %q, want %q", i, l.Text, want)
				}
			}
			if m := logs[capLines]; m.Text != store.LogCapMarker(capLines, 1<<20) {
				t.Errorf("last line %q, want the cap's marker", m.Text)
			}
			if received >= capPrinted/2 {
				t.Errorf("the server received %d of the %d lines; the worker did not stop sending", received, capPrinted)
			}
			t.Logf("the server received %d of %d lines", received, capPrinted)
		})
	}
}

// Counts of dropped lines for runs the worker does not hold, unknown
// runs, stale attempts or below 1 are ignored: the stream stays up and
// nothing is counted.
func TestHostileLogDropsIgnored(t *testing.T) {
	ce := startCapEnv(t)
	id, _, _ := ce.run("print", "null") // ended, with its count
	conn, err := grpc.NewClient(ce.srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := plutov1.NewWorkerServiceClient(conn).Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	send := func(m *plutov1.WorkerMessage) {
		t.Helper()
		if err := st.Send(m); err != nil {
			t.Fatal(err)
		}
	}
	send(&plutov1.WorkerMessage{Msg: &plutov1.WorkerMessage_Hello{Hello: &plutov1.Hello{WorkerId: "hostile", Group: "default", Capacity: 1, HandlerTypes: []string{"nothing"}}}})
	if _, err := st.Recv(); err != nil {
		t.Fatalf("welcome: %v", err)
	}
	send(&plutov1.WorkerMessage{Msg: &plutov1.WorkerMessage_Logs{Logs: &plutov1.LogBatch{Dropped: []*plutov1.LogDrop{
		{RunId: id, Attempt: 1, Lines: 1 << 40}, {RunId: id, Attempt: 2, Lines: 5}, {RunId: id, Attempt: 1, Lines: -7},
		{RunId: "r_unknown", Attempt: 1, Lines: 1 << 62}, {RunId: "", Attempt: 0, Lines: 0}, {},
	}}}})
	send(&plutov1.WorkerMessage{Msg: &plutov1.WorkerMessage_Heartbeat{Heartbeat: &plutov1.Heartbeat{Cpu: 0.5}}})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		ws := ce.srv.eng.Workers()
		if i := slices.IndexFunc(ws, func(w engine.WorkerInfo) bool { return w.ID == "hostile" }); i >= 0 && ws[i].CPU == 0.5 {
			break // the counts before the heartbeat were handled
		}
		if time.Now().After(deadline) {
			t.Fatal("the heartbeat after the counts was not seen")
		}
	}
	// A run's end waits for the log writes queued before its lines: any
	// count taken would be written by then.
	ce.run("one", "null")
	if st, err := ce.srv.Store().LogStats(ctx, id); err != nil || st.Dropped != capPrinted-capLines {
		t.Fatalf("stats %+v, %v: the hostile counts were taken", st, err)
	}
	if ws := ce.srv.eng.Workers(); len(ws) != 2 {
		t.Fatalf("%d workers connected, want the hostile one still there", len(ws))
	}
}
