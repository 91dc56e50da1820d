// Package fingerprint reduces an error message to its shape, so that the
// same failure with different ids, numbers, times and addresses groups as
// one: "dial tcp 10.0.0.7:5432: connection refused after 3 tries (run
// r_01M8X…)" and the same with other values share a fingerprint.
package fingerprint

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"
	"unicode/utf8"
)

// maxInput bounds the text examined: a fingerprint is about the start of
// a message, and masking must stay cheap whatever a handler returned.
const maxInput = 2048

// masks are applied in order; each replaces a variable part with a
// placeholder. Order matters: the specific shapes (times, UUIDs, ids,
// addresses) go before the plain numbers they contain.
var masks = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?`), "<time>"},
	{regexp.MustCompile(`\b\d{2}:\d{2}:\d{2}(\.\d+)?\b`), "<time>"},
	{regexp.MustCompile(`(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b`), "<uuid>"},
	{regexp.MustCompile(`\b[a-z]{1,3}_[0-9A-Za-z]{10,}\b`), "<id>"}, // Pluto ids (r_…), tokens (plt_…), similar
	{regexp.MustCompile(`\b\d{1,3}(\.\d{1,3}){3}(:\d+)?\b`), "<ip>"},
	{regexp.MustCompile(`\[[0-9a-fA-F:]+\](:\d+)?`), "<ip>"},
	{regexp.MustCompile(`(?i)\b0x[0-9a-f]+\b`), "<hex>"},
	{regexp.MustCompile(`(?i)\b[0-9a-f]{12,}\b`), "<hex>"},
	{regexp.MustCompile(`\b\d+(\.\d+)?(ns|µs|us|ms|s|m|h|%|[KMGT]i?B)?\b`), "<n>"},
	{regexp.MustCompile(`'[^'\n]{0,200}'`), "'<s>'"},
}

// Shape is the message with its variable parts masked and its spaces
// collapsed; valid UTF-8 however the input is.
func Shape(msg string) string {
	if len(msg) > maxInput {
		msg = msg[:maxInput]
	}
	msg = strings.ToValidUTF8(msg, "\uFFFD")
	for _, m := range masks {
		msg = m.re.ReplaceAllString(msg, m.with)
	}
	return strings.Join(strings.Fields(msg), " ")
}

// Of is the fingerprint of a message: a short hash of its shape.
func Of(msg string) string {
	sum := sha256.Sum256([]byte(Shape(msg)))
	return hex.EncodeToString(sum[:6])
}

// Probe is the longest run of the message's shape without a placeholder,
// trimmed: a substring every message of the fingerprint contains, for
// finding them with a plain text search (GET /api/v1/runs?error=…).
func Probe(msg string) string {
	shape := Shape(msg)
	best := ""
	for _, part := range placeholder.Split(shape, -1) {
		part = strings.TrimSpace(strings.Trim(part, "'\"()[]{}:,;"))
		if utf8.RuneCountInString(part) > utf8.RuneCountInString(best) {
			best = part
		}
	}
	return best
}

var placeholder = regexp.MustCompile(`'?<(time|uuid|id|ip|hex|n|s)>'?`)
