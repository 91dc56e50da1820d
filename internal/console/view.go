package console

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pluto-sched/pluto/internal/apijson"
	"github.com/pluto-sched/pluto/internal/auth"
)

//go:embed templates
var templateFS embed.FS

// view is what every page template sees: the language, the signed-in
// principal, the CSRF token, and helpers for text, links and permissions.
type view struct {
	c     *Console
	r     *http.Request
	Lang  string
	Who   *auth.Principal
	CSRF  string
	Path  string // the request path, for the navigation's current page
	Title string
	// NoAuth: the server runs without tokens (no sign-out button).
	NoAuth bool
}

func (c *Console) newView(r *http.Request, s *session) *view {
	v := &view{c: c, r: r, Lang: pickLang(r), Path: r.URL.Path, NoAuth: c.opts.AuthDisabled}
	if s != nil {
		v.Who, v.CSRF = s.who, s.csrf
	}
	return v
}

// T is the text of key in the view's language.
func (v *view) T(key string, args ...any) string { return v.c.cat.text(v.Lang, key, args...) }

// Asset is the versioned link to a static file.
func (v *view) Asset(name string) string { return v.c.assets.url(name) }

// Langs lists the languages for the switch.
func (v *view) Langs() []langOption {
	out := make([]langOption, 0, len(langs))
	for _, l := range langs {
		out = append(out, langOption{Code: l, Name: langNames[l], Current: l == v.Lang})
	}
	return out
}

type langOption struct {
	Code, Name string
	Current    bool
}

// Can reports whether the principal may do what a permission name says
// ("run-write", "job-write", "worker-admin", "submit", "audit",
// "token-admin"); what it may not do is not shown.
func (v *view) Can(perm string) bool {
	for p := auth.PermRead; p <= auth.PermAudit; p <<= 1 {
		if p.String() == perm {
			return v.Who.Allows(p)
		}
	}
	return false
}

// Nav reports whether path is the current section (for aria-current).
func (v *view) Nav(path string) bool {
	if path == "/" {
		return v.Path == "/"
	}
	return v.Path == path || strings.HasPrefix(v.Path, path+"/")
}

// render executes page's layout with data (a struct embedding *view).
func (c *Console) render(w http.ResponseWriter, page string, data any) error {
	var buf bytes.Buffer
	if err := c.pages[page].ExecuteTemplate(&buf, "layout", data); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, err := buf.WriteTo(w)
	return err
}

// renderPart executes one named template of page (an htmx partial).
func (c *Console) renderPart(w http.ResponseWriter, page, name string, data any) error {
	var buf bytes.Buffer
	if err := c.pages[page].ExecuteTemplate(&buf, name, data); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, err := buf.WriteTo(w)
	return err
}

// funcs are the template helpers that need no view.
var funcs = template.FuncMap{
	"deref":     deref,
	"when":      when,
	"pretty":    prettyJSON,
	"big":       func(b json.RawMessage) bool { return len(b) > 2048 },
	"elapsed":   elapsed,
	"join":      strings.Join,
	"mib":       mib,
	"slotTitle": slotTitle,
	"list":      func(s ...string) []string { return s },
	"summary":   matchSummary,
	"ptr":       func(s string) *string { return &s },
	"cpuSpark":  cpuSpark,
	"pct":       func(f float64) string { return fmt.Sprintf("%.0f%%", f*100) },
	"memSpark":  memSpark,
	"statusClass": func(s string) string {
		return "st-" + s
	},
	"step": func(name string, at *string) timelineStep { return timelineStep{Name: name, At: at} },
}

// timelineStep is one step of a run's timeline: its name and its time
// (nil: not reached).
type timelineStep struct {
	Name string
	At   *string
}

// when shows an RFC 3339 time as "2006-01-02 15:04:05" UTC ("" if unset).
func when(s *string) string {
	if s == nil || *s == "" {
		return ""
	}
	t, err := time.Parse(time.RFC3339Nano, *s)
	if err != nil {
		return *s
	}
	return t.UTC().Format("2006-01-02 15:04:05")
}

// elapsed is the time between two API times ("" if either is unset).
func elapsed(from, to *string) string {
	if from == nil || to == nil {
		return ""
	}
	a, err1 := time.Parse(time.RFC3339Nano, *from)
	b, err2 := time.Parse(time.RFC3339Nano, *to)
	if err1 != nil || err2 != nil {
		return ""
	}
	d := b.Sub(a)
	switch {
	case d < time.Millisecond:
		return d.String()
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	default:
		return d.Round(10 * time.Millisecond).String()
	}
}

// prettyJSON indents a JSON value for display ("null" for none).
func prettyJSON(b json.RawMessage) string {
	if len(b) == 0 {
		return "null"
	}
	var out bytes.Buffer
	if json.Indent(&out, b, "", "  ") != nil {
		return string(b)
	}
	return unescapeHTML(out.String())
}

// unescapeHTML turns the API's \u003c, \u003e and \u0026 escapes back
// into the characters (the template escapes them for the page), leaving
// an escaped backslash followed by "u003c" alone.
func unescapeHTML(s string) string {
	if !strings.Contains(s, `\u00`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			if s[i+1] == 'u' && i+6 <= len(s) {
				switch s[i+2 : i+6] {
				case "003c", "003C":
					b.WriteByte('<')
					i += 5
					continue
				case "003e", "003E":
					b.WriteByte('>')
					i += 5
					continue
				case "0026":
					b.WriteByte('&')
					i += 5
					continue
				}
			}
			b.WriteString(s[i : i+2]) // any other escape, kept whole
			i++
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

func errBody(msg string) apijson.ErrorBody { return apijson.ErrorBody{Message: msg} }

// with is a copy of q with each key of kv (key, value, key, value…) set;
// an empty value leaves its key out.
func with(q url.Values, kv ...string) url.Values {
	out := make(url.Values, len(q)+len(kv)/2)
	for k, vs := range q {
		out[k] = vs
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			out.Set(kv[i], kv[i+1])
		}
	}
	return out
}
