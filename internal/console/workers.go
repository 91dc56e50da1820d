package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/pluto-sched/pluto/internal/apijson"
)

// The workers page: every connected worker by group, its load and
// resources from heartbeats, and the remote controls (drain, resume,
// shutdown, restart, a custom command with each worker's reply).

type workersPage struct {
	*view
	Groups  []workerGroup
	Replies []apijson.CommandReply
	Flash   string
}

type workerGroup struct {
	Group   string
	Workers []apijson.Worker
}

func (c *Console) workersPage(w http.ResponseWriter, r *http.Request, v *view) error {
	p, err := c.workersData(r, v)
	if err != nil {
		return err
	}
	v.Title = v.T("workers.title")
	if r.URL.Query().Get("part") == "list" {
		return c.renderPart(w, "workers", "list", p)
	}
	return c.render(w, "workers", p)
}

func (c *Console) workersData(r *http.Request, v *view) (workersPage, error) {
	var ws apijson.List[apijson.Worker]
	if err := c.api.call(r.Context(), v.secret(), http.MethodGet, "/api/v1/workers", nil, nil, &ws); err != nil {
		return workersPage{}, err
	}
	by := map[string][]apijson.Worker{}
	for _, w := range ws.Items {
		by[w.Group] = append(by[w.Group], w)
	}
	p := workersPage{view: v}
	for g, list := range by {
		sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
		p.Groups = append(p.Groups, workerGroup{Group: g, Workers: list})
	}
	sort.Slice(p.Groups, func(i, j int) bool { return p.Groups[i].Group < p.Groups[j].Group })
	return p, nil
}

// workerAction is drain, resume, shutdown or restart of one worker, or a
// custom command to it; it answers with the refreshed list (and the
// command's replies).
func (c *Console) workerAction(w http.ResponseWriter, r *http.Request, v *view) error {
	id, action := r.PathValue("id"), r.PathValue("action")
	path := "/api/v1/workers/" + url.PathEscape(id) + "/" + action
	var flash string
	var replies []apijson.CommandReply
	switch action {
	case "drain", "resume", "shutdown", "restart":
		if err := c.api.call(r.Context(), v.secret(), http.MethodPost, path, nil, struct{}{}, nil); err != nil {
			return err
		}
		flash = v.T("workers.done."+action, id)
	case "command":
		cmd, err := commandFromForm(r)
		if err != nil {
			return err
		}
		var out apijson.CommandReplies
		if err := c.api.call(r.Context(), v.secret(), http.MethodPost, path, nil, cmd, &out); err != nil {
			return err
		}
		replies = out.Items
		flash = v.T("workers.replied", len(out.Items))
	default:
		return &APIError{Status: http.StatusNotFound, ErrorBody: errBody(v.T("error.notfound", r.URL.Path))}
	}
	p, err := c.workersData(r, v)
	if err != nil {
		return err
	}
	p.Flash, p.Replies = flash, replies
	return c.renderPart(w, "workers", "list", p)
}

// commandFromForm reads a custom command: its name and JSON arguments.
func commandFromForm(r *http.Request) (apijson.Command, error) {
	cmd := apijson.Command{Name: strings.TrimSpace(r.PostFormValue("name"))}
	if cmd.Name == "" {
		return cmd, &APIError{Status: http.StatusBadRequest, ErrorBody: apijson.ErrorBody{Message: "name is required", Field: "name"}}
	}
	if args := strings.TrimSpace(r.PostFormValue("args")); args != "" {
		if !json.Valid([]byte(args)) {
			return cmd, &APIError{Status: http.StatusBadRequest, ErrorBody: apijson.ErrorBody{Message: fmt.Sprintf("args must be JSON, got %q", args), Field: "args"}}
		}
		cmd.Args = json.RawMessage(args)
	}
	return cmd, nil
}

// mib shows bytes as MiB with one decimal.
func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
