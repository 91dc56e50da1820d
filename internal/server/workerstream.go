package server

import (
	"log/slog"

	"github.com/pluto-sched/pluto/internal/engine"
	plutov1 "github.com/pluto-sched/pluto/internal/gen/pluto/v1"
)

// workerService adapts worker streams to engine sessions. (Being written.)
type workerService struct {
	plutov1.UnimplementedWorkerServiceServer
}

func newWorkerService(eng *engine.Engine, log *slog.Logger) *workerService { return &workerService{} }

func (w *workerService) closeAll() {}
