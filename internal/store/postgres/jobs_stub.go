package postgres

// Placeholders until the jobs store lands (issue 4): they keep the module
// building while the backend is written. Delete this file when done.

import (
	"context"
	"errors"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

var errJobsTODO = errors.New("postgres: jobs are not implemented yet")

func (s *Store) JobGet(ctx context.Context, name string) (*store.Job, error) { return nil, errJobsTODO }
func (s *Store) JobList(ctx context.Context) ([]*store.Job, error)           { return nil, errJobsTODO }
func (s *Store) JobNextFire(ctx context.Context) (time.Time, error)          { return time.Time{}, nil }
func (t *tx) JobPut(ctx context.Context, p store.JobPutParams) (*store.Job, bool, error) {
	return nil, false, errJobsTODO
}
func (t *tx) JobDelete(ctx context.Context, name string) error { return errJobsTODO }
func (t *tx) JobPause(ctx context.Context, p store.JobPauseParams) (*store.Job, error) {
	return nil, errJobsTODO
}
func (t *tx) JobListDue(ctx context.Context, p store.JobListDueParams) ([]*store.Job, error) {
	return nil, errJobsTODO
}
func (t *tx) JobAdvance(ctx context.Context, p store.JobAdvanceParams) (bool, error) {
	return false, errJobsTODO
}
func (t *tx) RunListActiveForJob(ctx context.Context, job string, limit int) ([]*store.Run, error) {
	return nil, errJobsTODO
}
func (t *tx) RunUnblockNext(ctx context.Context, job string, now time.Time) (*store.Run, error) {
	return nil, errJobsTODO
}
