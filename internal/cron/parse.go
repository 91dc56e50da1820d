package cron

import (
	"fmt"
	"strconv"
	"strings"
)

// field identifies a cron field.
type field int

const (
	fSecond field = iota
	fMinute
	fHour
	fDom
	fMonth
	fDow
	fYear
)

var fieldNames = [...]string{"second", "minute", "hour", "day-of-month", "month", "day-of-week", "year"}

var (
	monthNames = []string{"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}
	dayNames   = []string{"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"}
)

const (
	minYear = 1970
	maxYear = 2199
)

// fieldDef is how one field is read in one syntax.
type fieldDef struct {
	f        field
	min, max int
	names    []string // names[i] is the value nameBase+i
	nameBase int
}

var (
	quartzFields = []fieldDef{
		{f: fSecond, min: 0, max: 59},
		{f: fMinute, min: 0, max: 59},
		{f: fHour, min: 0, max: 23},
		{f: fDom, min: 1, max: 31},
		{f: fMonth, min: 1, max: 12, names: monthNames, nameBase: 1},
		{f: fDow, min: 1, max: 7, names: dayNames, nameBase: 1}, // 1=SUN … 7=SAT
		{f: fYear, min: minYear, max: maxYear},
	}
	standardFields = []fieldDef{
		{f: fMinute, min: 0, max: 59},
		{f: fHour, min: 0, max: 23},
		{f: fDom, min: 1, max: 31},
		{f: fMonth, min: 1, max: 12, names: monthNames, nameBase: 1},
		{f: fDow, min: 0, max: 7, names: dayNames, nameBase: 0}, // 0 or 7=SUN … 6=SAT
	}
)

// set is a set of values 0..255 (years are stored minus 1970).
type set [4]uint64

func (s *set) add(v int)      { s[v>>6] |= 1 << (v & 63) }
func (s *set) has(v int) bool { return s[v>>6]&(1<<(v&63)) != 0 }
func (s *set) addRange(a, b, step int) {
	for v := a; v <= b; v += step {
		s.add(v)
	}
}

// parsedField is one field after parsing, in the field's own numbering.
type parsedField struct {
	values set
	any    bool // exactly * or ?: no restriction
	star   bool // starts with * or ? (Vixie's rule for day-of-month / day-of-week)
	quest  bool // exactly ?

	// Quartz day-of-month specials.
	lastOffsets uint32 // bit n: L-n (L is L-0)
	lastWeekday bool   // LW
	nearest     uint32 // bit n: nW
	lastNearest uint32 // bit n: L-nW
	// Quartz day-of-week specials, internal numbering 0=SUN.
	lastDow uint8    // bit d: dL
	nthDow  [7]uint8 // bit k of nthDow[d]: d#k
}

func (p *parsedField) hasSpecials() bool {
	return p.lastOffsets != 0 || p.lastWeekday || p.nearest != 0 || p.lastNearest != 0 || p.lastDow != 0 || p.nthDow != [7]uint8{}
}

// fieldParser parses one field's text.
type fieldParser struct {
	def    fieldDef
	quartz bool
	// lenient: an L item may stand in a list (ParseStored).
	lenient bool
	text    string // the whole field
	pos     int
	expr    string
}

// itemErrorf is errorf about one list item: the item prefixes the message
// unless it is the whole field.
func (fp *fieldParser) itemErrorf(item, format string, args ...any) *ParseError {
	if item != fp.text {
		format = "%s: " + format
		args = append([]any{item}, args...)
	}
	return fp.errorf(format, args...)
}

func (fp *fieldParser) errorf(format string, args ...any) *ParseError {
	return &ParseError{Expr: fp.expr, Field: fieldNames[fp.def.f], Pos: fp.pos, Value: fp.text, Msg: fmt.Sprintf(format, args...)}
}

// parseFields parses 5 (standard) or 6-7 (Quartz) fields.
func parseFields(expr string, fields []string, lenient bool) (*spec, error) {
	var defs []fieldDef
	quartz := false
	switch len(fields) {
	case 0:
		return nil, exprError(expr, "empty expression")
	case 5:
		defs = standardFields
	case 6, 7:
		defs = quartzFields[:len(fields)]
		quartz = true
	default:
		return nil, exprError(expr, fmt.Sprintf("%d fields: want 5 (standard: min hour day-of-month month day-of-week), 6 or 7 (Quartz: sec min hour day-of-month month day-of-week [year]) or a descriptor such as @daily", len(fields)))
	}
	var parsed [7]*parsedField
	for i, text := range fields {
		fp := &fieldParser{def: defs[i], quartz: quartz, lenient: lenient, text: text, pos: i + 1, expr: expr}
		p, err := fp.parse()
		if err != nil {
			return nil, err
		}
		parsed[defs[i].f] = p
	}
	if !quartz {
		// Standard cron has no seconds: fire at second 0.
		parsed[fSecond] = &parsedField{}
		parsed[fSecond].values.add(0)
	}
	dom, dow := parsed[fDom], parsed[fDow]
	if quartz {
		if dom.quest && dow.quest {
			return nil, exprError(expr, "day-of-month and day-of-week cannot both be ? (use * in one of them)")
		}
		if !dom.any && !dow.any {
			return nil, exprError(expr, "day-of-month and day-of-week cannot both be set (use ? in one of them)")
		}
	}
	return buildSpec(parsed, quartz), nil
}

func (fp *fieldParser) parse() (*parsedField, error) {
	p := &parsedField{}
	text := fp.text
	switch text {
	case "*":
		p.any, p.star = true, true
	case "?":
		if fp.def.f != fDom && fp.def.f != fDow {
			return nil, fp.errorf("? is only allowed in day-of-month and day-of-week")
		}
		p.any, p.star, p.quest = true, true, true
	}
	if p.any {
		if fp.def.f == fYear {
			p.values.addRange(0, maxYear-minYear, 1)
		} else {
			p.values.addRange(fp.def.min, fp.def.max, 1)
		}
		fp.normalize(p)
		return p, nil
	}
	p.star = strings.HasPrefix(text, "*")
	items := strings.Split(text, ",")
	// Quartz takes L (and LW, L-n, dL) only alone in its field, and so
	// does Pluto: "1,5,L" or "6,7,L" would fire on days Quartz refuses
	// to name (its parser: "Support for specifying 'L' … with other days
	// … is not implemented").
	if fp.quartz && !fp.lenient && (fp.def.f == fDom || fp.def.f == fDow) && len(items) > 1 && strings.ContainsAny(text, "Ll") {
		return nil, fp.errorf("L cannot be combined with other values in a list (%q): give it alone", text)
	}
	for _, item := range items {
		if err := fp.parseItem(p, item); err != nil {
			return nil, err
		}
	}
	fp.normalize(p)
	return p, nil
}

// normalize maps day-of-week values to the internal numbering 0=SUN … 6=SAT.
// (Years are stored as offsets from 1970 as they are parsed.)
func (fp *fieldParser) normalize(p *parsedField) {
	if fp.def.f == fDow {
		var s set
		for v := fp.def.min; v <= fp.def.max; v++ {
			if p.values.has(v) {
				if fp.quartz {
					s.add(v - 1)
				} else {
					s.add(v % 7)
				}
			}
		}
		p.values = s
	}
}

func (fp *fieldParser) parseItem(p *parsedField, item string) error {
	if item == "" {
		return fp.errorf("empty list item")
	}
	up := strings.ToUpper(item)
	if item == "?" {
		return fp.errorf("? must be the whole field")
	}
	if fp.quartz && fp.def.f == fDom {
		switch {
		case up == "L":
			p.lastOffsets |= 1
			return nil
		case up == "LW":
			p.lastWeekday = true
			return nil
		case strings.HasPrefix(up, "L-") && strings.HasSuffix(up, "W"):
			// L-nW: the weekday nearest the n-th day before the last.
			n, err := fp.number(item[2:len(item)-1], item)
			if err != nil {
				return err
			}
			if n > 30 {
				return fp.itemErrorf(item, "offset from the last day must be 0-30")
			}
			p.lastNearest |= 1 << n
			return nil
		case strings.HasPrefix(up, "L-"):
			n, err := fp.number(item[2:], item)
			if err != nil {
				return err
			}
			if n > 30 {
				return fp.itemErrorf(item, "offset from the last day must be 0-30")
			}
			p.lastOffsets |= 1 << n
			return nil
		case strings.HasSuffix(up, "W"):
			n, err := fp.number(item[:len(item)-1], item)
			if err != nil {
				return err
			}
			if n < 1 || n > 31 {
				return fp.itemErrorf(item, "day before W must be 1-31")
			}
			p.nearest |= 1 << n
			return nil
		}
	}
	if fp.quartz && fp.def.f == fDow {
		switch {
		case up == "L": // L alone in day-of-week is 7, Saturday
			p.values.add(7)
			return nil
		case strings.Contains(up, "#"):
			day, nth, _ := strings.Cut(item, "#")
			d, err := fp.value(day, item)
			if err != nil {
				return err
			}
			k, err := fp.number(nth, item)
			if err != nil {
				return err
			}
			if k < 1 || k > 5 {
				return fp.itemErrorf(item, "occurrence after # must be 1-5")
			}
			p.nthDow[d-1] |= 1 << k
			return nil
		case len(up) > 1 && strings.HasSuffix(up, "L"):
			d, err := fp.value(item[:len(item)-1], item)
			if err != nil {
				return err
			}
			p.lastDow |= 1 << (d - 1)
			return nil
		}
	}

	base, stepText, hasStep := strings.Cut(item, "/")
	lo, hi := fp.def.min, fp.def.max
	switch {
	case base == "*":
	case base == "":
		return fp.itemErrorf(item, "missing value before /")
	default:
		a, b, isRange := strings.Cut(base, "-")
		var err error
		if lo, err = fp.value(a, item); err != nil {
			return err
		}
		if isRange {
			if hi, err = fp.value(b, item); err != nil {
				return err
			}
			if lo > hi {
				return fp.itemErrorf(item, "range start %s is after end %s", a, b)
			}
		} else if !hasStep {
			hi = lo
		}
	}
	step := 1
	if hasStep {
		var err error
		if step, err = fp.number(stepText, item); err != nil {
			return err
		}
		if span := fp.def.max - fp.def.min + 1; step < 1 || step > span {
			return fp.itemErrorf(item, "step %d out of range 1-%d", step, span)
		}
	}
	if fp.def.f == fYear {
		lo, hi = lo-minYear, hi-minYear
	}
	p.values.addRange(lo, hi, step)
	return nil
}

// number parses a non-negative decimal number.
func (fp *fieldParser) number(s, item string) (int, error) {
	if s == "" {
		return 0, fp.itemErrorf(item, "missing number")
	}
	if len(s) > 9 || strings.Trim(s, "0123456789") != "" {
		return 0, fp.itemErrorf(item, "%q is not a number%s", s, fp.hint(item))
	}
	n, _ := strconv.Atoi(s)
	return n, nil
}

// value parses a number or a name and checks the field's range.
func (fp *fieldParser) value(s, item string) (int, error) {
	hint := fp.hint(item)
	if s == item {
		item = fp.text // the message quotes the value: no item prefix
	}
	if s == "" {
		return 0, fp.itemErrorf(item, "missing value")
	}
	if c := s[0]; c < '0' || c > '9' {
		up := strings.ToUpper(s)
		for i, n := range fp.def.names {
			if up == n {
				return fp.def.nameBase + i, nil
			}
		}
		if fp.def.names != nil {
			return 0, fp.itemErrorf(item, "invalid value %q (want %d-%d or %s-%s)%s", s, fp.def.min, fp.def.max,
				fp.def.names[0], fp.def.names[len(fp.def.names)-1], hint)
		}
		return 0, fp.itemErrorf(item, "invalid value %q (want %d-%d)%s", s, fp.def.min, fp.def.max, hint)
	}
	if len(s) > 9 || strings.Trim(s, "0123456789") != "" {
		return 0, fp.itemErrorf(item, "invalid value %q (want %d-%d)%s", s, fp.def.min, fp.def.max, hint)
	}
	n, _ := strconv.Atoi(s)
	if n < fp.def.min || n > fp.def.max {
		if s == fp.text {
			return 0, fp.errorf("value out of range %d-%d", fp.def.min, fp.def.max)
		}
		return 0, fp.errorf("value %s out of range %d-%d", s, fp.def.min, fp.def.max)
	}
	return n, nil
}

// hint explains Quartz-only syntax used in a standard expression.
func (fp *fieldParser) hint(item string) string {
	if fp.quartz || (fp.def.f != fDom && fp.def.f != fDow) {
		return ""
	}
	up := strings.ToUpper(item)
	if strings.ContainsAny(up, "#") || strings.HasPrefix(up, "L") || strings.HasSuffix(up, "L") || strings.HasSuffix(up, "W") {
		return "; L, W and # are Quartz syntax: use 6 or 7 fields (sec min hour day-of-month month day-of-week [year])"
	}
	return ""
}
