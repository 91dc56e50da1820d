package console

import (
	"embed"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// Languages. Every string the console shows comes from one catalog per
// language (i18n/LANG.json, key → text, fmt verbs for arguments); a test
// fails when a key is missing from a catalog or a template uses an unknown
// one. The language is the "lang" cookie (the switch in the page header)
// or else the best match of Accept-Language.

//go:embed i18n/*.json
var catalogFS embed.FS

// langs are the supported languages, the default first.
var langs = []string{"en", "zh"}

// langNames is how the switch names each language, in that language.
var langNames = map[string]string{"en": "English", "zh": "简体中文"}

type catalogs map[string]map[string]string // lang → key → text

func loadCatalogs() (catalogs, error) {
	c := make(catalogs)
	for _, l := range langs {
		b, err := catalogFS.ReadFile("i18n/" + l + ".json")
		if err != nil {
			return nil, err
		}
		m := make(map[string]string)
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("i18n/%s.json: %w", l, err)
		}
		c[l] = m
	}
	return c, nil
}

// text is key in lang with args applied; a missing key shows as itself in
// brackets (the catalog test keeps that from shipping).
func (c catalogs) text(lang, key string, args ...any) string {
	s, ok := c[lang][key]
	if !ok {
		if s, ok = c[langs[0]][key]; !ok {
			return "[" + key + "]"
		}
	}
	if len(args) == 0 {
		return s
	}
	return fmt.Sprintf(s, args...)
}

// keys lists a catalog's keys, sorted.
func (c catalogs) keys(lang string) []string {
	out := make([]string, 0, len(c[lang]))
	for k := range c[lang] {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// pickLang chooses the language of a request.
func pickLang(r *http.Request) string {
	if ck, err := r.Cookie(langCookie); err == nil && supported(ck.Value) {
		return ck.Value
	}
	return negotiate(r.Header.Get("Accept-Language"))
}

func supported(l string) bool {
	for _, s := range langs {
		if s == l {
			return true
		}
	}
	return false
}

// negotiate picks the supported language with the highest q in an
// Accept-Language header ("zh-CN,zh;q=0.9,en;q=0.8"); ties keep header
// order. Any Chinese tag maps to zh (the catalog is Simplified Chinese).
func negotiate(header string) string {
	best, bestQ := langs[0], -1.0
	for _, part := range strings.Split(header, ",") {
		tag, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				continue
			}
			q = f
		}
		base, _, _ := strings.Cut(strings.ToLower(tag), "-")
		if supported(base) && q > bestQ && q > 0 {
			best, bestQ = base, q
		}
	}
	return best
}
