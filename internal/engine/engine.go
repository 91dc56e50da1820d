// Package engine is Pluto's scheduler: it decides when runs are ready and
// which worker gets them, and moves every run through its lifecycle with
// each change committed to the store before anyone is told about it.
package engine

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// Engine is the scheduler of one server.
type Engine struct{}

var errTODO = errors.New("engine: not implemented yet")

func (e *Engine) Submit(ctx context.Context, specs []SubmitSpec) ([]SubmitResult, error) {
	return nil, errTODO
}
func (e *Engine) Get(ctx context.Context, id string) (*store.Run, error) { return nil, errTODO }
func (e *Engine) List(ctx context.Context, p store.RunListParams) (store.RunPage, error) {
	return store.RunPage{}, errTODO
}
func (e *Engine) Wait(ctx context.Context, id string) (*store.Run, error) { return nil, errTODO }
func (e *Engine) Cancel(ctx context.Context, id, reason string) (*store.Run, error) {
	return nil, errTODO
}
func (e *Engine) Retry(ctx context.Context, id string) (*store.Run, error) { return nil, errTODO }
func (e *Engine) Workers() []WorkerInfo                                    { return nil }
func (e *Engine) Logs(ctx context.Context, p store.LogListParams) ([]store.LogEntry, error) {
	return nil, errTODO
}
func (e *Engine) Ready(ctx context.Context) error { return errTODO }

// Config configures an engine.
type Config struct {
	Store             store.Store
	ServerID          string
	Logger            *slog.Logger
	HeartbeatInterval time.Duration
	MaxPayload        int64
}

func New(cfg Config) (*Engine, error)             { return &Engine{}, nil }
func (e *Engine) Start(ctx context.Context) error { return nil }
func (e *Engine) Stop(ctx context.Context) error  { return nil }
