package console

import (
	"io/fs"
	"regexp"
	"strings"
	"testing"
)

// Every key is in every catalog, and every key a template or handler uses
// is in the catalogs.
func TestCatalogsComplete(t *testing.T) {
	c, err := loadCatalogs()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range langs {
		for _, k := range c.keys(langs[0]) {
			if _, ok := c[l][k]; !ok {
				t.Errorf("catalog %s lacks key %q", l, k)
			}
		}
		for _, k := range c.keys(l) {
			if _, ok := c[langs[0]][k]; !ok {
				t.Errorf("catalog %s has key %q that %s lacks", l, k, langs[0])
			}
			if strings.TrimSpace(c[l][k]) == "" {
				t.Errorf("catalog %s: key %q is empty", l, k)
			}
		}
	}
	for _, k := range usedKeys(t) {
		if _, ok := c[langs[0]][k]; !ok {
			t.Errorf("key %q is used but in no catalog", k)
		}
	}
}

var keyUse = regexp.MustCompile(`\bT "([a-z0-9_.]+)"|\.T\("([a-z0-9_.]+)"[,)]`)

// usedKeys finds the keys named in templates and Go files, plus the
// computed ones (statuses, bulk actions).
func usedKeys(t *testing.T) []string {
	var keys []string
	add := func(b []byte) {
		for _, m := range keyUse.FindAllSubmatch(b, -1) {
			keys = append(keys, string(m[1])+string(m[2]))
		}
	}
	err := fs.WalkDir(templateFS, "templates", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := templateFS.ReadFile(p)
		add(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	goFiles, _ := fs.Glob(osDir("."), "*.go")
	for _, f := range goFiles {
		b, err := fs.ReadFile(osDir("."), f)
		if err != nil {
			t.Fatal(err)
		}
		add(b)
	}
	for _, s := range statuses {
		keys = append(keys, "status."+s)
	}
	keys = append(keys, "bulk.done.cancel", "bulk.done.retry", "workers.done.drain", "workers.done.resume", "workers.done.shutdown", "workers.done.restart",
		"jobs.done.pause", "jobs.done.resume", "jobs.done.delete",
		"match.title.cancel", "match.title.retry", "match.count.cancel", "match.count.retry", "match.confirm.cancel", "match.confirm.retry")
	for _, k := range []string{"fired", "late", "skipped", "missing", "unknown", "due"} {
		keys = append(keys, "slot."+k)
	}
	for _, k := range []string{"second", "minute", "hour", "dom", "month", "dow", "year"} {
		keys = append(keys, "cron.field."+k)
	}
	for _, k := range []string{"every", "hourly", "daily", "midnight", "weekly", "monthly", "yearly", "annually"} {
		keys = append(keys, "cron.desc."+k)
	}
	if len(keys) < 20 {
		t.Fatalf("found only %d keys: the pattern is broken", len(keys))
	}
	return keys
}

func TestNegotiate(t *testing.T) {
	for header, want := range map[string]string{
		"":                        "en",
		"zh-CN,zh;q=0.9,en;q=0.8": "zh",
		"en-US,en;q=0.9,zh;q=0.8": "en",
		"fr-FR,zh-TW;q=0.5":       "zh",
		"de;q=1,en;q=0.1":         "en",
		"zh;q=0,en;q=0.2":         "en",
		"zh;q=abc":                "en",
		"ZH-hans":                 "zh",
		",,;;q=,":                 "en",
	} {
		if got := negotiate(header); got != want {
			t.Errorf("negotiate(%q) = %q, want %q", header, got, want)
		}
	}
}

func TestUnescapeHTML(t *testing.T) {
	for in, want := range map[string]string{
		`"a \u003e b \u0026 \u003cc\u003e"`: `"a > b & <c>"`,
		`"\\u003c"`:                         `"\\u003c"`,
		`"\\\u003c"`:                        `"\\<"`,
		`"\n\u00e9"`:                        `"\n\u00e9"`,
		`"end\`:                             `"end\`,
	} {
		if got := unescapeHTML(in); got != want {
			t.Errorf("unescapeHTML(%s) = %s, want %s", in, got, want)
		}
	}
}
