package main

import (
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pluto-sched/pluto/internal/dur"
)

// apiAuditEntry is one entry of GET /api/v1/audit.
type apiAuditEntry struct {
	Seq     int64   `json:"seq"`
	At      *string `json:"at"`
	Actor   string  `json:"actor"`
	Action  string  `json:"action"`
	Target  string  `json:"target"`
	Outcome string  `json:"outcome"`
	Detail  string  `json:"detail"`
}

func (a *app) newAuditCmd() *cobra.Command {
	var af auditFlags
	cmd := &cobra.Command{
		Use:   "audit [--actor A] [--action X] [--target T] [--since TIME] [--until TIME]",
		Short: "Show the security audit trail (token changes, refused requests, …)",
		Long: `Show the audit trail, newest first: who (the token's name) did what
(token.create, run.cancel, …) to what, and whether it was allowed. Needs
an admin token. Entries are kept 90 days.

--actor, --action and --target match exactly. --since and --until bound the
time of the entries to [since, until): an RFC 3339 time such as
2026-11-21T08:00:00Z, or a duration back from now such as 1h, 30m or 7d
(1h means one hour ago). When more entries match than --limit, the cursor
of the next page is printed to stderr (table) or is the answer's
next_cursor (json); pass it to --cursor.`,
		Example: `  pluto audit --since 24h
  pluto audit --actor ci-deploy --action run.cancel
  pluto audit --since 2026-11-01T00:00:00Z --until 2026-11-02T00:00:00Z -o json`,
		Args: cobra.NoArgs,
	}
	co := a.addClientFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&af.actor, "actor", "", "only entries of this actor (a token name)")
	f.StringVar(&af.action, "action", "", "only entries of this action, e.g. token.create")
	f.StringVar(&af.target, "target", "", "only entries about this target (a token name, a run ID, …)")
	f.StringVar(&af.since, "since", "", "only entries at or after this time: RFC 3339, or a duration ago such as 1h or 7d")
	f.StringVar(&af.until, "until", "", "only entries before this time: RFC 3339, or a duration ago such as 1h")
	f.IntVar(&af.limit, "limit", 0, "at most this many entries (1-1000; default 100)")
	f.StringVar(&af.cursor, "cursor", "", "cursor of the page to show (from a previous listing)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		q, err := af.query(cmd.Flags().Changed("limit"), time.Now())
		if err != nil {
			return err
		}
		return showPage(cmd, co, a.stdout, a.stderr, "/audit", q, "entries", func(entries []apiAuditEntry) error {
			return printAudit(a.stdout, entries)
		})
	}
	return cmd
}

// auditFlags are the flags of pluto audit.
type auditFlags struct {
	actor, action, target string
	since, until, cursor  string
	limit                 int
}

// query checks the flags and builds the query of GET /api/v1/audit;
// relative times count back from now.
func (af *auditFlags) query(limitSet bool, now time.Time) (url.Values, error) {
	since, until, limit := af.since, af.until, af.limit
	q := url.Values{}
	for k, v := range map[string]string{"actor": af.actor, "action": af.action, "target": af.target, "cursor": af.cursor} {
		if v != "" {
			q.Set(k, v)
		}
	}
	var from, to time.Time
	var err error
	if since != "" {
		if from, err = parseWhen(since, now); err != nil {
			return nil, usageErrorf("invalid --since %q: %v", since, err)
		}
		q.Set("since", from.UTC().Format(time.RFC3339Nano))
	}
	if until != "" {
		if to, err = parseWhen(until, now); err != nil {
			return nil, usageErrorf("invalid --until %q: %v", until, err)
		}
		q.Set("until", to.UTC().Format(time.RFC3339Nano))
	}
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		return nil, usageErrorf("--since %s is not before --until %s: no entry can match", since, until)
	}
	if err := setLimit(q, limitSet, limit); err != nil {
		return nil, err
	}
	return q, nil
}

// parseWhen reads an RFC 3339 time, or a positive duration meaning that
// long before now (people ask for "the last hour" far more often than
// for a date).
func parseWhen(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	d, err := dur.Parse(s)
	if err != nil || d <= 0 {
		return time.Time{}, fmt.Errorf("want an RFC 3339 time such as 2026-11-21T08:00:00Z, or a duration ago such as 1h or 7d")
	}
	return now.Add(-d), nil
}

func printAudit(w io.Writer, entries []apiAuditEntry) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "TIME\tACTOR\tACTION\tTARGET\tOUTCOME\tDETAIL")
	for _, e := range entries {
		actor := e.Actor
		if actor == "" {
			actor = "(anonymous)" // an unauthenticated caller
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", shortTime(e.At), actor, e.Action, orDash(&e.Target), e.Outcome, oneLine(e.Detail))
	}
	return tw.Flush()
}

// oneLine shows free text in one table cell: tabs and line breaks would
// break the columns.
func oneLine(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
