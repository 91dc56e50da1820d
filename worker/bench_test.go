package worker

import (
	"context"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	plutov1 "github.com/pluto-sched/pluto/internal/gen/pluto/v1"
)

// windowServer keeps a worker's window full: it dispatches window tasks,
// then one new task per result received, until total tasks have finished.
type windowServer struct {
	plutov1.UnimplementedWorkerServiceServer
	total int
	done  chan struct{}
	msgs  atomic.Int64
}

func (s *windowServer) Connect(stream plutov1.WorkerService_ConnectServer) error {
	m, err := stream.Recv()
	if err != nil {
		return err
	}
	window := int(m.GetHello().GetWindow())
	if err := stream.Send(&plutov1.ServerMessage{Msg: &plutov1.ServerMessage_Welcome{Welcome: &plutov1.Welcome{HeartbeatIntervalMs: 60_000}}}); err != nil {
		return err
	}
	sent, finished := 0, 0
	dispatch := func(n int) error {
		n = min(n, s.total-sent)
		if n == 0 {
			return nil
		}
		tasks := make([]*plutov1.Task, n)
		for i := range tasks {
			tasks[i] = &plutov1.Task{RunId: "r" + strconv.Itoa(sent), Attempt: 1, Type: "noop"}
			sent++
		}
		return stream.Send(&plutov1.ServerMessage{Msg: &plutov1.ServerMessage_Dispatch{Dispatch: &plutov1.Dispatch{Tasks: tasks}}})
	}
	if err := dispatch(window); err != nil {
		return err
	}
	for {
		m, err := stream.Recv()
		if err != nil {
			return err
		}
		s.msgs.Add(1)
		rs := m.GetResults().GetResults()
		if len(rs) == 0 {
			continue
		}
		finished += len(rs)
		acks := make([]*plutov1.ResultAck, len(rs))
		for i, r := range rs {
			acks[i] = &plutov1.ResultAck{RunId: r.GetRunId(), Attempt: r.GetAttempt(), Accepted: true}
		}
		if err := stream.Send(&plutov1.ServerMessage{Msg: &plutov1.ServerMessage_ResultAcks{ResultAcks: &plutov1.ResultAcks{Acks: acks}}}); err != nil {
			return err
		}
		if finished == s.total {
			close(s.done)
			<-stream.Context().Done()
			return nil
		}
		if err := dispatch(len(rs)); err != nil {
			return err
		}
	}
}

// BenchmarkNoopRuns measures no-op runs through one worker over a real
// loopback gRPC stream (server side reduced to dispatch-on-result). The
// window decides how much each round trip carries. The ",store" variants
// give the worker a result store (Options.ResultDir): the server
// acknowledges at once, so nothing should be written, and the cost should
// be the same as without one; "appended/run" reports what was written.
func BenchmarkNoopRuns(b *testing.B) {
	for _, bc := range []struct {
		name               string
		capacity, prefetch int
	}{
		{"window=4", 2, 2},
		{"window=16", 8, 8},
		{"window=64", 32, 32},
		{"window=1008", 8, 1000},
	} {
		b.Run(bc.name, func(b *testing.B) { benchNoopRuns(b, bc.capacity, bc.prefetch, false) })
		b.Run(bc.name+",store", func(b *testing.B) { benchNoopRuns(b, bc.capacity, bc.prefetch, true) })
	}
}

func benchNoopRuns(b *testing.B, capacity, prefetch int, store bool) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &windowServer{total: b.N, done: make(chan struct{})}
	gs := grpc.NewServer()
	plutov1.RegisterWorkerServiceServer(gs, srv)
	go gs.Serve(lis)
	defer gs.Stop()

	mux := NewMux()
	mux.HandleFunc("noop", noop)
	opts := Options{Servers: []string{lis.Addr().String()}, Capacity: capacity, Prefetch: prefetch, Handler: mux, Logger: discardLogger}
	if store {
		opts.ResultDir = b.TempDir()
	}
	w, err := New(opts)
	if err != nil {
		b.Fatal(err)
	}
	cs := &countingStore{}
	if store {
		cs.wrap(w)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	b.ResetTimer()
	start := time.Now()
	go func() { errc <- w.Run(ctx) }()
	<-srv.done
	elapsed := time.Since(start)
	b.StopTimer()
	cancel()
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "runs/s")
	b.ReportMetric(float64(srv.msgs.Load())/float64(b.N), "msgs/run")
	if store {
		appended, _ := cs.counts()
		b.ReportMetric(float64(appended)/float64(b.N), "appended/run")
	}
}
