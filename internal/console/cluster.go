package console

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/pluto-sched/pluto/internal/apijson"
)

// The cluster page (servers, leader and term, store) and the audit page
// (the audit trail, filtered and paged).

type clusterPage struct {
	*view
	Cluster apijson.Cluster
}

func (c *Console) clusterPage(w http.ResponseWriter, r *http.Request, v *view) error {
	p := clusterPage{view: v}
	if err := c.api.call(r.Context(), v.secret(), http.MethodGet, "/api/v1/cluster", nil, nil, &p.Cluster); err != nil {
		return err
	}
	v.Title = v.T("cluster.title")
	return c.render(w, "cluster", p)
}

type auditPage struct {
	*view
	Entries []apijson.AuditEntry
	Filter  url.Values
	Next    string
}

// auditFilters are the audit list's filters.
var auditFilters = []string{"actor", "action", "target", "since", "until"}

func (c *Console) auditPage(w http.ResponseWriter, r *http.Request, v *view) error {
	filter := url.Values{}
	for _, k := range auditFilters {
		if s := strings.TrimSpace(r.URL.Query().Get(k)); s != "" {
			filter.Set(k, s)
		}
	}
	q := with(filter, "limit", "100", "cursor", r.URL.Query().Get("cursor"))
	var page apijson.List[apijson.AuditEntry]
	if err := c.api.call(r.Context(), v.secret(), http.MethodGet, "/api/v1/audit", q, nil, &page); err != nil {
		return err
	}
	p := auditPage{view: v, Entries: page.Items, Filter: filter}
	if page.NextCursor != "" {
		p.Next = with(filter, "cursor", page.NextCursor).Encode()
	}
	v.Title = v.T("audit.title")
	return c.render(w, "audit", p)
}
