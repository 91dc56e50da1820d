package console

import (
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestContrast checks the console's colours against WCAG 2 AA: every text
// colour on every background it is used on, in the light and the dark
// theme, has a contrast ratio of at least 4.5.
func TestContrast(t *testing.T) {
	b, err := staticFS.ReadFile("static/console.css")
	if err != nil {
		t.Fatal(err)
	}
	css := string(b)
	light := palette(t, css[:strings.Index(css, "@media (prefers-color-scheme: dark)")])
	dark := palette(t, css[strings.Index(css, "@media (prefers-color-scheme: dark)"):])
	texts := []string{"--fg", "--muted", "--accent", "--err", "--ok", "--warn"}
	backs := []string{"--bg", "--card"}
	for name, p := range map[string]map[string]string{"light": light, "dark": dark} {
		for _, fg := range texts {
			for _, bg := range backs {
				r := ratio(t, p[fg], p[bg])
				if r < 4.5 {
					t.Errorf("%s theme: %s %s on %s %s: contrast %.2f, want >= 4.5", name, fg, p[fg], bg, p[bg], r)
				}
			}
		}
	}
}

var cssVar = regexp.MustCompile(`(--[a-z]+):\s*(#[0-9a-fA-F]{6})`)

func palette(t *testing.T, css string) map[string]string {
	p := map[string]string{}
	for _, m := range cssVar.FindAllStringSubmatch(css, -1) {
		if _, ok := p[m[1]]; !ok {
			p[m[1]] = m[2]
		}
	}
	if len(p) < 8 {
		t.Fatalf("found %d colours", len(p))
	}
	return p
}

func ratio(t *testing.T, a, b string) float64 {
	la, lb := luminance(t, a), luminance(t, b)
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}

func luminance(t *testing.T, hex string) float64 {
	var c [3]float64
	for i := range c {
		v, err := strconv.ParseUint(hex[1+2*i:3+2*i], 16, 8)
		if err != nil {
			t.Fatalf("colour %q", hex)
		}
		s := float64(v) / 255
		if s <= 0.03928 {
			c[i] = s / 12.92
		} else {
			c[i] = math.Pow((s+0.055)/1.055, 2.4)
		}
	}
	return 0.2126*c[0] + 0.7152*c[1] + 0.0722*c[2]
}
