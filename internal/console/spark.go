package console

import (
	"fmt"
	"html/template"
	"strings"
)

// sparkline draws values as a small inline SVG line (no script: the
// page's content security policy allows none inline), scaled between 0
// and the largest value; label is its accessible name.
func sparkline(label string, values []float64) template.HTML {
	const w, h = 80, 18
	if len(values) < 2 {
		return ""
	}
	top := 0.0
	for _, v := range values {
		top = max(top, v)
	}
	if top == 0 {
		top = 1
	}
	var pts strings.Builder
	for i, v := range values {
		x := float64(i) * w / float64(len(values)-1)
		y := h - 1 - (v/top)*(h-2)
		fmt.Fprintf(&pts, "%.1f,%.1f ", x, y)
	}
	return template.HTML(fmt.Sprintf(`<svg class="spark" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s"><polyline fill="none" stroke="currentColor" stroke-width="1.5" points="%s"/></svg>`,
		w, h, w, h, template.HTMLEscapeString(label), strings.TrimSpace(pts.String())))
}

func cpuSpark(label string, v []float64) template.HTML { return sparkline(label, v) }

func memSpark(label string, v []uint64) template.HTML {
	f := make([]float64, len(v))
	for i, x := range v {
		f[i] = float64(x)
	}
	return sparkline(label, f)
}
