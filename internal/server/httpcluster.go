package server

import (
	"net/http"

	"github.com/pluto-sched/pluto/internal/apijson"
)

// cluster serves GET /api/v1/cluster.
func (h *httpAPI) cluster(w http.ResponseWriter, r *http.Request) {
	info, err := h.eng.Cluster(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	out := apijson.Cluster{Store: info.Store, Leader: info.Leader, Term: info.Term, Servers: []apijson.ClusterServer{}}
	for _, s := range info.Servers {
		out.Servers = append(out.Servers, apijson.ClusterServer{
			ID: s.ID, HTTP: s.HTTP, GRPC: s.GRPC, Leader: s.Leader, Alive: s.Alive,
			StartedAt: optTime(s.StartedAt), LastSeen: optTime(s.LastSeen),
		})
	}
	writeJSON(w, http.StatusOK, out)
}
