package server

// Backfills (docs/workflows.md#backfill, docs/api.md):
//
//	POST /api/v1/jobs/{name}/backfill         create one (201), or its plan with "dry_run": true (200)
//	GET  /api/v1/backfills                    the newest first
//	GET  /api/v1/backfills/{id}               one, with its progress per job
//	POST /api/v1/backfills/{id}/{pause|resume|cancel}

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/pluto-sched/pluto/internal/apijson"
	"github.com/pluto-sched/pluto/internal/auth"
	"github.com/pluto-sched/pluto/internal/engine"
	"github.com/pluto-sched/pluto/internal/store"
)

// backfillSource is the engine's backfills; *engine.Engine implements it.
// Engines without it (test fakes) do not serve the routes.
type backfillSource interface {
	Backfill(ctx context.Context, spec engine.BackfillSpec) (*store.Backfill, error)
	BackfillPlan(ctx context.Context, spec engine.BackfillSpec) (*engine.BackfillPlan, error)
	BackfillGet(ctx context.Context, id string) (*store.Backfill, error)
	BackfillList(ctx context.Context, limit int) ([]*store.Backfill, error)
	BackfillControl(ctx context.Context, id, action string) (*store.Backfill, error)
	BackfillProgress(ctx context.Context, bf *store.Backfill) ([]engine.BackfillJobProgress, error)
}

var _ backfillSource = (*engine.Engine)(nil)

type (
	backfillJSON         = apijson.Backfill
	backfillProgressJSON = apijson.BackfillProgress
)

// backfillRequestJSON is the body of POST /api/v1/jobs/{name}/backfill.
type backfillRequestJSON struct {
	From     string `json:"from"`
	To       string `json:"to"`
	Parallel int    `json:"parallel"`
	Cascade  bool   `json:"cascade"`
	Order    string `json:"order"`
	Rerun    string `json:"rerun"`
	DryRun   bool   `json:"dry_run"`
}

type (
	planJSON     = apijson.BackfillPlan
	planSlotJSON = apijson.PlanSlot
)

func toBackfillJSON(b *store.Backfill) backfillJSON {
	order := "asc"
	if b.Desc {
		order = "desc"
	}
	return backfillJSON{ID: b.ID, Job: b.Job, From: b.From.Format(time.RFC3339Nano), To: b.To.Format(time.RFC3339Nano),
		Parallel: b.Parallel, Cascade: b.Cascade, Order: order, Rerun: b.Rerun, State: b.State, Next: optTime(b.Next),
		Started: b.Started, Kept: b.Kept, CreatedAt: optTime(b.CreatedAt), UpdatedAt: optTime(b.UpdatedAt), FinishedAt: optTime(b.FinishedAt)}
}

func (h *httpAPI) backfillRoutes(src backfillSource) []route {
	rs := []route{
		{"POST /api/v1/jobs/{name}/backfill", auth.PermJobWrite, scopeJob, "job.backfill", h.intake(h.createBackfill(src))},
		{"GET /api/v1/backfills", auth.PermRead, scopeNone, "", h.listBackfills(src)},
		{"GET /api/v1/backfills/{id}", auth.PermRead, scopeNone, "", h.getBackfill(src)},
	}
	for _, a := range []string{"pause", "resume", "cancel"} {
		rs = append(rs, route{"POST /api/v1/backfills/{id}/" + a, auth.PermJobWrite, scopeNone, "backfill." + a, h.controlBackfill(src, a)})
	}
	return rs
}

func (h *httpAPI) createBackfill(src backfillSource) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		body, err := h.readObject(w, r, `{"from": …, "to": …}`, true)
		if err != nil {
			writeError(w, err)
			return
		}
		var in backfillRequestJSON
		if err := decodeStrict(body, &in); err != nil {
			writeError(w, err)
			return
		}
		spec := engine.BackfillSpec{Job: name, Parallel: in.Parallel, Cascade: in.Cascade, Order: in.Order, Rerun: in.Rerun}
		for _, f := range []struct {
			field, v string
			t        *time.Time
		}{{"from", in.From, &spec.From}, {"to", in.To, &spec.To}} {
			if f.v == "" {
				writeError(w, badRequest(f.field, "%s is required (RFC 3339, e.g. \"2026-11-01T00:00:00Z\")", f.field))
				return
			}
			if *f.t, err = time.Parse(time.RFC3339Nano, f.v); err != nil {
				writeError(w, badRequest(f.field, "%s %q is not an RFC 3339 time (e.g. \"2026-11-01T00:00:00Z\")", f.field, f.v))
				return
			}
		}
		if in.DryRun {
			plan, err := src.BackfillPlan(r.Context(), spec)
			if err != nil {
				writeError(w, jobErr(name, err))
				return
			}
			writeJSON(w, http.StatusOK, toPlanJSON(plan))
			return
		}
		bf, err := src.Backfill(r.Context(), spec)
		if err != nil {
			writeError(w, jobErr(name, err))
			return
		}
		w.Header().Set("Location", "/api/v1/backfills/"+bf.ID)
		writeJSON(w, http.StatusCreated, toBackfillJSON(bf))
	}
}

func toPlanJSON(p *engine.BackfillPlan) planJSON {
	out := planJSON{Jobs: p.Jobs, Slots: make([]planSlotJSON, len(p.Slots)), Create: p.Create, Rerun: p.Rerun, Keep: p.Keep,
		EstimateSeconds: p.Estimate.Seconds()}
	for i, s := range p.Slots {
		out.Slots[i] = planSlotJSON{LogicalTime: s.At.Format(time.RFC3339Nano), Action: s.Action}
		if s.Run != nil {
			id, st := s.Run.ID, string(s.Run.Status)
			out.Slots[i].RunID, out.Slots[i].Status = &id, &st
		}
	}
	return out
}

func (h *httpAPI) listBackfills(src backfillSource) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		bs, err := src.BackfillList(r.Context(), 100)
		if err != nil {
			writeError(w, err)
			return
		}
		items := []backfillJSON{}
		for _, b := range bs {
			if h.backfillAllowed(r.Context(), b) == nil {
				items = append(items, toBackfillJSON(b))
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"items": items})
	}
}

// backfillAllowed checks that a token limited to groups may see the
// backfill's job (a job that is gone passes: only its name remains).
func (h *httpAPI) backfillAllowed(ctx context.Context, b *store.Backfill) error {
	if len(principal(ctx).Groups) == 0 {
		return nil
	}
	j, err := h.eng.JobGet(ctx, b.Job)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return checkGroup(ctx, j.Group)
}

// lookupBackfill reads backfill id for the request, answering 404 or 403
// itself (nil then).
func (h *httpAPI) lookupBackfill(w http.ResponseWriter, r *http.Request, src backfillSource) *store.Backfill {
	id := r.PathValue("id")
	b, err := src.BackfillGet(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		err = notFound("backfill %s not found", id)
	}
	if err == nil {
		if err = h.backfillAllowed(r.Context(), b); err != nil {
			err = httpAuthError(err)
		}
	}
	if err != nil {
		writeError(w, err)
		return nil
	}
	return b
}

func (h *httpAPI) getBackfill(src backfillSource) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b := h.lookupBackfill(w, r, src)
		if b == nil {
			return
		}
		progress, err := src.BackfillProgress(r.Context(), b)
		if err != nil {
			writeError(w, err)
			return
		}
		out := toBackfillJSON(b)
		for _, p := range progress {
			pj := backfillProgressJSON{Job: p.Job}
			for st, n := range p.Counts {
				switch {
				case st == store.StatusSucceeded:
					pj.Done += n
				case st.Terminal():
					pj.Failed += n
				default:
					pj.Running += n
				}
			}
			out.Progress = append(out.Progress, pj)
		}
		writeJSON(w, http.StatusOK, out)
	}
}

func (h *httpAPI) controlBackfill(src backfillSource, action string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b := h.lookupBackfill(w, r, src)
		if b == nil {
			return
		}
		out, err := src.BackfillControl(r.Context(), b.ID, action)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, toBackfillJSON(out))
	}
}
