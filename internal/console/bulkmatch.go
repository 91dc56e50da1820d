package console

import (
	"fmt"
	"net/http"
	"net/url"

	"github.com/pluto-sched/pluto/internal/apijson"
)

// "Cancel or retry every run matching this filter": a confirmation that
// shows how many runs the filter matches, then the action on each (through
// the API, so each is checked and audited). At most maxMatching runs per
// confirmation: a larger set is acted on in several rounds, each shown.

const maxMatching = 10000

type matchPage struct {
	*view
	Action string
	Query  string
	Filter url.Values
	Count  int
	More   bool // the filter matches more than maxMatching runs
	Done   int
	Failed map[string]int
	After  bool // the action ran
}

// matchingIDs walks the filter's runs (1,000 a page) and returns their
// ids, at most max, and whether there are more. Only runs an action can
// change are taken: not terminal for cancel, terminal but not succeeded
// for retry.
func (c *Console) matchingIDs(r *http.Request, v *view, filter url.Values, action string, max int) ([]string, bool, error) {
	var ids []string
	q := with(filter, "limit", "1000")
	for {
		var page apijson.List[apijson.Run]
		if err := c.api.call(r.Context(), v.secret(), http.MethodGet, "/api/v1/runs", q, nil, &page); err != nil {
			return nil, false, err
		}
		for i := range page.Items {
			run := &page.Items[i]
			if action == "cancel" && run.Terminal() || action == "retry" && (!run.Terminal() || run.Status == "succeeded") {
				continue
			}
			if len(ids) == max {
				return ids, true, nil
			}
			ids = append(ids, run.ID)
		}
		if page.NextCursor == "" {
			return ids, false, nil
		}
		q.Set("cursor", page.NextCursor)
	}
}

func (c *Console) matchConfirm(w http.ResponseWriter, r *http.Request, v *view) error {
	action := r.URL.Query().Get("action")
	if action != "cancel" && action != "retry" {
		return &APIError{Status: http.StatusBadRequest, ErrorBody: apijson.ErrorBody{Message: "action must be cancel or retry", Field: "action"}}
	}
	filter := filterQuery(r.URL.Query())
	ids, more, err := c.matchingIDs(r, v, filter, action, maxMatching)
	if err != nil {
		return err
	}
	v.Title = v.T("match.title." + action)
	return c.render(w, "match", matchPage{view: v, Action: action, Query: filter.Encode(), Filter: filter, Count: len(ids), More: more})
}

func (c *Console) matchApply(w http.ResponseWriter, r *http.Request, v *view) error {
	action := r.PostFormValue("action")
	if action != "cancel" && action != "retry" {
		return &APIError{Status: http.StatusBadRequest, ErrorBody: apijson.ErrorBody{Message: "action must be cancel or retry", Field: "action"}}
	}
	q, err := url.ParseQuery(r.PostFormValue("query"))
	if err != nil {
		return &APIError{Status: http.StatusBadRequest, ErrorBody: apijson.ErrorBody{Message: "bad filter: " + err.Error(), Field: "query"}}
	}
	filter := filterQuery(q)
	ids, more, err := c.matchingIDs(r, v, filter, action, maxMatching)
	if err != nil {
		return err
	}
	p := matchPage{view: v, Action: action, Query: filter.Encode(), Filter: filter, Count: len(ids), More: more, After: true, Failed: map[string]int{}}
	for _, id := range ids {
		if err := c.api.call(r.Context(), v.secret(), http.MethodPost, "/api/v1/runs/"+url.PathEscape(id)+"/"+action, nil, struct{}{}, nil); err != nil {
			p.Failed[err.Error()]++
			continue
		}
		p.Done++
	}
	v.Title = v.T("match.title." + action)
	return c.render(w, "match", p)
}

// matchSummary is the filter as a line of text.
func matchSummary(f url.Values) string {
	if len(f) == 0 {
		return "—"
	}
	s := ""
	for _, k := range runFilters {
		if val := f.Get(k); val != "" {
			if s != "" {
				s += ", "
			}
			s += fmt.Sprintf("%s=%s", k, val)
		}
	}
	return s
}
