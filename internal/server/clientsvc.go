package server

import plutov1 "github.com/pluto-sched/pluto/internal/gen/pluto/v1"

// newClientService adapts the engine to the gRPC ClientService.
// (Placeholder: being written.)
func newClientService(eng Engine, maxPayload int64) plutov1.ClientServiceServer {
	return plutov1.UnimplementedClientServiceServer{}
}
