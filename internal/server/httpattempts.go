package server

import (
	"net/http"

	"github.com/pluto-sched/pluto/internal/apijson"
	"github.com/pluto-sched/pluto/internal/store"
)

// attempts answers GET /api/v1/runs/{id}/attempts: the attempts recorded
// as they ended, then the current one from the run. The run is read
// first: attempts are only ever added, so one that ended in between is
// listed once, recorded, rather than missing.
func (h *httpAPI) attempts(w http.ResponseWriter, r *http.Request) {
	run, err := h.getRun(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	earlier, err := h.eng.RunAttempts(r.Context(), run.ID)
	if err != nil {
		writeError(w, runErr(run.ID, err))
		return
	}
	writeJSON(w, http.StatusOK, apijson.FromAttempts(store.AttemptHistory(run, earlier)))
}
