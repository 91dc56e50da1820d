package worker_test

import (
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	plutov1 "github.com/pluto-sched/pluto/internal/gen/pluto/v1"
)

// standIn is an in-process stand-in for a Pluto server in the examples:
// it accepts workers that present token and holds their streams open,
// dispatching nothing.
type standIn struct {
	plutov1.UnimplementedWorkerServiceServer
	addr string
	stop func()
}

func startStandIn(token string) (*standIn, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := grpc.NewServer(grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		md, _ := metadata.FromIncomingContext(ss.Context())
		if got := md.Get("authorization"); len(got) != 1 || got[0] != "Bearer "+token {
			return status.Error(codes.Unauthenticated, "unknown token")
		}
		return h(srv, ss)
	}))
	si := &standIn{addr: lis.Addr().String(), stop: s.Stop}
	plutov1.RegisterWorkerServiceServer(s, si)
	go s.Serve(lis)
	return si, nil
}

func (si *standIn) Connect(stream plutov1.WorkerService_ConnectServer) error {
	if _, err := stream.Recv(); err != nil {
		return err
	}
	wel := &plutov1.Welcome{ServerId: "stand-in", HeartbeatIntervalMs: 60_000}
	if err := stream.Send(&plutov1.ServerMessage{Msg: &plutov1.ServerMessage_Welcome{Welcome: wel}}); err != nil {
		return err
	}
	for {
		if _, err := stream.Recv(); err != nil {
			return nil // the worker left
		}
	}
}
