package console

import (
	"strings"
)

// cronField is one field of a cron expression and what it means.
type cronField struct {
	Name  string // translated field name
	Value string
	Means string
}

// explainCron says field by field what an expression (already parsed, so
// well-formed) means: "*/15" in the minutes is "every 15 minutes from 0".
func explainCron(v *view, expr string) []cronField {
	f := strings.Fields(expr)
	if len(f) > 0 && strings.HasPrefix(f[0], "@") {
		return []cronField{{Name: v.T("cron.descriptor"), Value: strings.Join(f, " "), Means: v.T("cron.desc." + strings.TrimPrefix(strings.ToLower(f[0]), "@"))}}
	}
	var names []string
	switch len(f) {
	case 5:
		names = []string{"minute", "hour", "dom", "month", "dow"}
	case 6:
		names = []string{"second", "minute", "hour", "dom", "month", "dow"}
	case 7:
		names = []string{"second", "minute", "hour", "dom", "month", "dow", "year"}
	default:
		return nil
	}
	out := make([]cronField, len(f))
	for i, val := range f {
		out[i] = cronField{Name: v.T("cron.field." + names[i]), Value: val, Means: explainValue(v, val)}
	}
	return out
}

// explainValue explains one field's comma-separated parts.
func explainValue(v *view, val string) string {
	parts := strings.Split(val, ",")
	out := make([]string, 0, len(parts))
	for _, p := range parts {
		out = append(out, explainPart(v, p))
	}
	return strings.Join(out, v.T("cron.and"))
}

func explainPart(v *view, p string) string {
	switch {
	case p == "*" || p == "?":
		return v.T("cron.any")
	case p == "L":
		return v.T("cron.last")
	case p == "LW":
		return v.T("cron.lastweekday")
	case strings.HasPrefix(p, "L-") && strings.HasSuffix(p, "W"):
		return v.T("cron.lastminusweekday", strings.TrimSuffix(strings.TrimPrefix(p, "L-"), "W"))
	case strings.HasPrefix(p, "L-"):
		return v.T("cron.lastminus", strings.TrimPrefix(p, "L-"))
	case strings.Contains(p, "/"):
		from, step, _ := strings.Cut(p, "/")
		if from == "*" || from == "" {
			from = "0"
		}
		return v.T("cron.every", step, from)
	case strings.Contains(p, "#"):
		day, nth, _ := strings.Cut(p, "#")
		return v.T("cron.nth", nth, day)
	case strings.HasSuffix(p, "W"):
		return v.T("cron.nearestweekday", strings.TrimSuffix(p, "W"))
	case len(p) > 1 && strings.HasSuffix(p, "L"):
		return v.T("cron.lastof", strings.TrimSuffix(p, "L"))
	case strings.Contains(p, "-"):
		a, b, _ := strings.Cut(p, "-")
		return v.T("cron.range", a, b)
	}
	return p
}
