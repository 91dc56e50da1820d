// Package console is Pluto's web console: server-rendered pages
// (html/template) with htmx for partial updates and uPlot for charts, all
// embedded in the binary. It is a thin adapter over the JSON API (see
// apicall.go): pages read, and actions write, through the same routes as
// the CLI, in process, as the signed-in token.
package console

import (
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
)

// Options configures a Console.
type Options struct {
	// API serves the JSON API (/api/v1/...); the console calls it in
	// process.
	API http.Handler
	// Verify checks a token secret (sign-in and every request).
	Verify VerifyFunc
	// AuthDisabled: the server runs without tokens; there is no sign-in
	// and everyone is admin.
	AuthDisabled bool
	// Changes says when runs changed, for the pages' live updates (nil:
	// pages update on reload only).
	Changes ChangeFeed
	// Stopping is closed when the server begins to stop: open event
	// streams end.
	Stopping <-chan struct{}
	Logger   *slog.Logger
}

// Console serves the web console.
type Console struct {
	opts   Options
	api    caller
	assets *assets
	cat    catalogs
	pages  map[string]*template.Template
	mux    *http.ServeMux
	log    *slog.Logger
	links  loginLinks
}

// New builds a Console. It fails only on a broken embedded asset,
// catalog or template (a build defect, caught by the package's tests).
func New(opts Options) (*Console, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	a, err := newAssets()
	if err != nil {
		return nil, err
	}
	cat, err := loadCatalogs()
	if err != nil {
		return nil, err
	}
	c := &Console{opts: opts, api: caller{api: opts.API}, assets: a, cat: cat, mux: http.NewServeMux(), log: opts.Logger}
	if c.pages, err = parsePages(); err != nil {
		return nil, err
	}
	c.routes()
	return c, nil
}

// routes registers the console's pages and actions.
func (c *Console) routes() {
	c.mux.HandleFunc("GET /static/", c.assets.serve)
	c.mux.HandleFunc("GET /login", c.loginPage)
	c.mux.HandleFunc("POST /login", c.login)
	c.mux.HandleFunc("POST /logout", c.logout)
	c.mux.HandleFunc("POST /lang", c.setLang)
	c.mux.HandleFunc("GET /events", c.page(c.events))
	c.mux.HandleFunc("GET /{$}", c.page(c.overview))
	c.mux.HandleFunc("GET /runs", c.page(c.runsPage))
	c.mux.HandleFunc("GET /runs/{id}", c.page(c.runPage))
	c.mux.HandleFunc("GET /failures", c.page(c.failuresPage))
	c.mux.HandleFunc("POST /runs/{id}/{action}", c.action(c.runAction))
	c.mux.HandleFunc("POST /runs-bulk", c.action(c.runsBulk))
	c.mux.HandleFunc("GET /runs-matching", c.page(c.matchConfirm))
	c.mux.HandleFunc("POST /runs-matching", c.action(c.matchApply))
	c.mux.HandleFunc("GET /workers", c.page(c.workersPage))
	c.mux.HandleFunc("POST /workers/{id}/{action}", c.action(c.workerAction))
	c.mux.HandleFunc("GET /jobs", c.page(c.jobsPage))
	c.mux.HandleFunc("GET /jobs/new", c.page(c.jobForm))
	c.mux.HandleFunc("GET /jobs/{name}", c.page(c.jobPage))
	c.mux.HandleFunc("GET /jobs/{name}/grid", c.page(c.gridPage))
	c.mux.HandleFunc("GET /jobs-preview", c.page(c.cronPreview))
	c.mux.HandleFunc("POST /jobs-save", c.action(c.jobSave))
	c.mux.HandleFunc("POST /jobs/{name}/{action}", c.action(c.jobAction))
	c.mux.HandleFunc("GET /backfills", c.page(c.backfillsPage))
	c.mux.HandleFunc("GET /backfills/{id}", c.page(c.backfillPage))
	c.mux.HandleFunc("POST /backfills/{id}/{action}", c.action(c.backfillAction))
	c.mux.HandleFunc("GET /cluster", c.page(c.clusterPage))
	c.mux.HandleFunc("GET /audit", c.page(c.auditPage))
	c.mux.HandleFunc("GET /", c.notFound)
}

// ServeHTTP serves a console request. Every answer forbids framing (no
// clickjacking) and states a strict content security policy: scripts and
// styles only from this server.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Content-Type-Options", "nosniff")
	c.mux.ServeHTTP(w, r)
}

// handlerFunc is a page or action handler of a signed-in request.
type handlerFunc func(w http.ResponseWriter, r *http.Request, v *view) error

// page wraps a GET page: no session → the sign-in page (for htmx partial
// requests, a redirect header the library follows).
func (c *Console) page(fn handlerFunc) http.HandlerFunc { return c.signedIn(fn, false) }

// action wraps a POST: a session and its CSRF token are required.
func (c *Console) action(fn handlerFunc) http.HandlerFunc { return c.signedIn(fn, true) }

func (c *Console) signedIn(fn handlerFunc, csrf bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, err := c.session(r)
		if err != nil {
			c.noSession(w, r, err)
			return
		}
		v := c.newView(r, s)
		if csrf && !checkCSRF(r, s) {
			c.fail(w, r, v, &APIError{Status: http.StatusForbidden})
			return
		}
		if err := fn(w, r, v); err != nil {
			c.fail(w, r, v, err)
		}
	}
}

func (c *Console) noSession(w http.ResponseWriter, r *http.Request, err error) {
	if !errors.Is(err, errNoSession) {
		c.log.Warn("console: cannot check the session", "err", err)
		http.Error(w, "cannot check the session: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	to := "/login?next=" + urlQueryEscape(r.URL.RequestURI())
	if r.Header.Get("HX-Request") != "" {
		w.Header().Set("HX-Redirect", to)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if r.Method != http.MethodGet {
		http.Error(w, "not signed in", http.StatusUnauthorized)
		return
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// fail answers a handler's error: the API's status and message in the
// page frame (403 for what the role may not do, 404, 400 naming the field).
func (c *Console) fail(w http.ResponseWriter, r *http.Request, v *view, err error) {
	status, msg := http.StatusInternalServerError, err.Error()
	var ae *APIError
	if errors.As(err, &ae) {
		status = ae.Status
		if status == http.StatusForbidden && ae.Message == "" {
			msg = v.T("error.csrf")
		}
	}
	if status >= 500 {
		c.log.Warn("console page failed", "path", r.URL.Path, "err", err)
	}
	w.WriteHeader(status)
	if r.Header.Get("HX-Request") != "" {
		_ = c.pages["error"].ExecuteTemplate(w, "flash", map[string]any{"Msg": msg, "Status": status})
		return
	}
	v.Title = v.T("error.title")
	_ = c.pages["error"].ExecuteTemplate(w, "layout", errorPage{view: v, Status: status, Msg: msg})
}

type errorPage struct {
	*view
	Status int
	Msg    string
}

// notFound answers a path the console does not have: 404, signed in or
// not (a redirect to the sign-in page would hide the mistake).
func (c *Console) notFound(w http.ResponseWriter, r *http.Request) {
	s, err := c.session(r)
	if err != nil {
		s = nil
	}
	v := c.newView(r, s)
	c.fail(w, r, v, &APIError{Status: http.StatusNotFound, ErrorBody: errBody(v.T("error.notfound", r.URL.Path))})
}

// parsePages parses each page template with the layout.
func parsePages() (map[string]*template.Template, error) {
	base, err := template.New("layout").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := make(map[string]*template.Template)
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return nil, err
		}
		pages[name] = t
	}
	return pages, nil
}
