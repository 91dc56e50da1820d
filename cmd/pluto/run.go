package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pluto-sched/pluto/internal/apijson"
)

func (a *app) newRunCmd() *cobra.Command {
	cmd := groupCmd("run", "List, inspect, cancel, retry and wait for runs")
	cmd.AddCommand(
		a.newRunLsCmd(),
		a.newRunGetCmd(),
		a.newRunCancelCmd(),
		a.newRunRetryCmd(),
		a.newRunWaitCmd(),
		a.newRunLogsCmd(),
	)
	return cmd
}

func (a *app) newRunLsCmd() *cobra.Command {
	var (
		statuses []string
		limit    int
		cursor   string
	)
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List runs, newest first",
		Long: `List runs, newest first (--order asc: oldest first). Filters combine: a run
is listed when it matches all of them. Times are RFC 3339
(2026-01-02T15:04:05Z) or a duration meaning that long ago (90m, 24h, 7d).
--error searches failed and timed-out runs' errors for a substring (or
the runs of --status).

When more runs may match than --limit, the cursor of the next page is
printed to standard error (table) or returned as next_cursor (json). A
page may hold fewer runs than --limit and still have a cursor: the server
bounds the runs one page examines, so a rare match takes more pages, not
a slower one.`,
		Example: `  pluto run ls --status failed,timed_out --group default
  pluto run ls --type email --worker w-7 --created-after 24h
  pluto run ls --error "connection refused" --finished-after 2026-01-02T00:00:00Z
  pluto run ls --order asc --limit 20 -o json`,
		Aliases: []string{"list"},
		Args:    cobra.NoArgs,
	}
	co := a.addClientFlags(cmd)
	f := cmd.Flags()
	f.StringSliceVar(&statuses, "status", nil, "only runs in these statuses (comma-separated or repeated)")
	// Flags passed to the server as they are (times after toRFC3339).
	params := []struct{ flag, param, usage string }{
		{"group", "group", "only runs of this worker group"},
		{"job", "job", "only runs of this job"},
		{"type", "type", "only runs of this handler type"},
		{"worker", "worker", "only runs whose last attempt ran on this worker"},
		{"created-after", "created_after", "only runs created at or after this time"},
		{"created-before", "created_before", "only runs created before this time"},
		{"finished-after", "finished_after", "only runs finished at or after this time"},
		{"finished-before", "finished_before", "only runs finished before this time"},
		{"order", "order", "desc (newest first, the default) or asc"},
		{"error", "error", "only runs whose error contains this text (failed and timed-out runs unless --status)"},
	}
	values := make([]string, len(params))
	for i, p := range params {
		f.StringVar(&values[i], p.flag, "", p.usage)
	}
	f.IntVar(&limit, "limit", 0, "at most this many runs (1-1000; default 100)")
	f.StringVar(&cursor, "cursor", "", "cursor of the page to show (from a previous listing)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		q := url.Values{}
		for _, s := range statuses {
			if s = strings.TrimSpace(s); s != "" {
				q.Add("status", s)
			}
		}
		for i, p := range params {
			v := values[i]
			if v == "" {
				continue
			}
			if strings.HasSuffix(p.param, "_after") || strings.HasSuffix(p.param, "_before") {
				t, err := parseWhen(v, time.Now())
				if err != nil {
					return usageErrorf("invalid --%s %q: %v", p.flag, v, err)
				}
				v = t.Format(time.RFC3339Nano)
			}
			q.Set(p.param, v)
		}
		if err := setLimit(q, cmd.Flags().Changed("limit"), limit); err != nil {
			return err
		}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		return showPage(cmd, co, a.stdout, a.stderr, "/runs", q, "runs", func(runs []apiRun) error {
			printRunList(a.stdout, runs)
			return nil
		})
	}
	return cmd
}

func (a *app) newRunGetCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "get ID",
		Short: "Show one run",
		Long: `Show one run. A run that took more than one attempt (retried after a
failure or a timeout, lost with its worker, or retried by an operator) is
followed by its attempts: worker, times, outcome and error of each.`,
		Args: exactArgs("run ID"),
	}
	co := a.addClientFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := co.client()
		if err != nil {
			return err
		}
		raw, run, err := c.getRun(cmd.Context(), args[0])
		if err != nil {
			return err
		}
		if co.json() {
			return printJSON(a.stdout, raw)
		}
		printRunDetail(a.stdout, run)
		if run.Attempt <= 1 {
			return nil // one attempt at most: the run shows it
		}
		raw, err = c.do(cmd.Context(), http.MethodGet, "/runs/"+url.PathEscape(run.ID)+"/attempts", nil, nil)
		if err != nil {
			return err
		}
		as, err := decode[apijson.Attempts](raw)
		if err != nil {
			return err
		}
		if len(as.Attempts) > 1 {
			fmt.Fprintln(a.stdout)
			printAttempts(a.stdout, as.Attempts)
		}
		return nil
	}
	return cmd
}

func (a *app) newRunCancelCmd() *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel a run wherever it is (pending, queued, on a worker)",
		Long: `Cancel a run wherever it is: waiting, queued, or running on a worker (the
worker is told and the handler's context is cancelled). Cancelling a
finished run changes nothing.`,
		Args: exactArgs("run ID"),
	}
	co := a.addClientFlags(cmd)
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded with the run)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := co.client()
		if err != nil {
			return err
		}
		var body any
		if reason != "" {
			body = map[string]string{"reason": reason}
		}
		return a.postRun(cmd, c, co, "/runs/"+url.PathEscape(args[0])+"/cancel", body)
	}
	return cmd
}

func (a *app) newRunRetryCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "retry ID",
		Short: "Run a finished run that did not succeed again",
		Args:  exactArgs("run ID"),
	}
	co := a.addClientFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := co.client()
		if err != nil {
			return err
		}
		return a.postRun(cmd, c, co, "/runs/"+url.PathEscape(args[0])+"/retry", nil)
	}
	return cmd
}

// postRun POSTs to a run action and prints the run it answers with.
func (a *app) postRun(cmd *cobra.Command, c *apiClient, co *clientOpts, path string, body any) error {
	raw, err := c.do(cmd.Context(), http.MethodPost, path, nil, body)
	if err != nil {
		return err
	}
	if co.json() {
		return printJSON(a.stdout, raw)
	}
	run, err := decode[apiRun](raw)
	if err != nil {
		return err
	}
	printRunTable(a.stdout, []apiRun{run})
	return nil
}

func (a *app) newRunWaitCmd() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "wait ID",
		Short: "Wait for a run to finish; exit 0 only if it succeeded",
		Long: `Wait for a run to finish and print it. Exits 0 if it succeeded and 1 if it
ended otherwise, or if --timeout passed first.`,
		Args: exactArgs("run ID"),
	}
	co := a.addClientFlags(cmd)
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "give up after this long (0: never)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := co.client()
		if err != nil {
			return err
		}
		if timeout < 0 {
			return usageErrorf("invalid --timeout %s: must not be negative", timeout)
		}
		raw, run, err := c.waitRun(cmd.Context(), args[0], timeout)
		return a.finishWait(co, raw, run, err)
	}
	return cmd
}

func (a *app) newRunLogsCmd() *cobra.Command {
	var (
		follow bool
		after  int64
	)
	cmd := &cobra.Command{
		Use:   "logs ID",
		Short: "Print a run's log lines",
		Long: `Print the lines a run printed or logged, in order. With -f, keep printing
new lines as they arrive until the run finishes (a Server-Sent Events
stream; a dropped connection is resumed where it broke). With -o json,
print {"items": [...]} (with -f: one JSON line per log line). Lines
dropped past the run's log cap are counted on stderr.`,
		Args: exactArgs("run ID"),
	}
	co := a.addClientFlags(cmd)
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "follow the log until the run finishes")
	cmd.Flags().Int64Var(&after, "after", 0, "start after this line number")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := co.client()
		if err != nil {
			return err
		}
		if after < 0 {
			return usageErrorf("invalid --after %d: must not be negative", after)
		}
		id := args[0]
		if follow {
			return a.followLogs(cmd, c, co, id, after)
		}
		all := apiList[json.RawMessage]{Items: []json.RawMessage{}}
		for {
			q := url.Values{"after": {strconv.FormatInt(after, 10)}, "limit": {"1000"}}
			raw, err := c.do(cmd.Context(), http.MethodGet, "/runs/"+url.PathEscape(id)+"/logs", q, nil)
			if err != nil {
				return err
			}
			page, err := decode[apiList[json.RawMessage]](raw)
			if err != nil {
				return err
			}
			for _, item := range page.Items {
				l, err := decode[apiLog](item)
				if err != nil {
					return err
				}
				after = l.Seq
				if co.json() {
					all.Items = append(all.Items, item)
				} else {
					printLogLine(a.stdout, l)
				}
			}
			if page.NextCursor == "" || len(page.Items) == 0 {
				break
			}
		}
		if co.json() {
			b, _ := json.Marshal(all)
			if err := printJSON(a.stdout, b); err != nil {
				return err
			}
		}
		a.noteDropped(cmd.Context(), c, id)
		return nil
	}
	return cmd
}

func printLogLine(w io.Writer, l apiLog) {
	text := l.Text
	if !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	_, _ = io.WriteString(w, text)
}

// ---- run tables ----

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

// printRunTable is the short form: ID and STATUS.
func printRunTable(w io.Writer, runs []apiRun) {
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tSTATUS")
	for _, r := range runs {
		fmt.Fprintf(tw, "%s\t%s\n", r.ID, r.Status)
	}
	_ = tw.Flush()
}

func printRunList(w io.Writer, runs []apiRun) {
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tSTATUS\tTYPE\tGROUP\tATTEMPT\tWORKER\tCREATED")
	for _, r := range runs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Status, r.Type, r.Group,
			attempts(r), orDash(r.WorkerID), shortTime(r.CreatedAt))
	}
	_ = tw.Flush()
}

func printRunDetail(w io.Writer, r apiRun) {
	tw := newTable(w)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("ID", r.ID)
	row("Status", r.Status)
	row("Type", r.Type)
	row("Group", r.Group)
	if r.Job != nil {
		row("Job", *r.Job)
	}
	if r.ParentID != nil {
		row("Parent", *r.ParentID)
	}
	if r.Shard != nil {
		row("Shard", strconv.Itoa(*r.Shard))
	}
	row("Attempt", attempts(r))
	row("Priority", strconv.Itoa(r.Priority))
	if r.Key != nil {
		row("Key", *r.Key)
	}
	if r.LogicalTime != nil {
		row("Logical time", shortTime(r.LogicalTime))
	}
	row("Worker", orDash(r.WorkerID))
	row("Created", shortTime(r.CreatedAt))
	row("Run at", shortTime(r.RunAt))
	row("Dispatched", shortTime(r.DispatchedAt))
	row("Started", shortTime(r.StartedAt))
	row("Finished", shortTime(r.FinishedAt))
	if r.Timeout != nil {
		row("Timeout", *r.Timeout)
	}
	row("Payload", compactJSON(r.Payload))
	if len(r.Result) > 0 && string(r.Result) != "null" {
		row("Result", compactJSON(r.Result))
	}
	if r.Error != nil {
		row("Error", *r.Error)
	}
	if r.LogLinesDropped > 0 {
		row("Log lines dropped", fmt.Sprintf("%d (past the log cap)", r.LogLinesDropped))
	}
	_ = tw.Flush()
}

// printAttempts is a run's attempts, one a line.
func printAttempts(w io.Writer, as []apijson.Attempt) {
	tw := newTable(w)
	fmt.Fprintln(tw, "ATTEMPT\tWORKER\tDISPATCHED\tSTARTED\tENDED\tOUTCOME\tERROR")
	for _, a := range as {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", a.Attempt, orDash(&a.WorkerID), shortTime(a.DispatchedAt),
			shortTime(a.StartedAt), shortTime(a.EndedAt), a.Outcome, errorCell(a.Error))
	}
	_ = tw.Flush()
}

// errorCell is an error in a table cell: its first line, at most 80
// characters ("-" for none).
func errorCell(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if r := []rune(s); len(r) > 80 {
		s = string(r[:80]) + "…"
	}
	return oneLine(s)
}

func attempts(r apiRun) string {
	if r.MaxAttempts > 0 {
		return fmt.Sprintf("%d/%d", r.Attempt, r.MaxAttempts)
	}
	return strconv.Itoa(r.Attempt)
}

func orDash(s *string) string {
	if s == nil || *s == "" {
		return "-"
	}
	return *s
}

// shortTime shows an API time in UTC to the second.
func shortTime(s *string) string {
	if s == nil || *s == "" {
		return "-"
	}
	t, err := time.Parse(time.RFC3339Nano, *s)
	if err != nil {
		return *s
	}
	return t.UTC().Format(time.RFC3339)
}

// compactJSON shows a JSON value on one line, cut at 200 characters.
func compactJSON(b json.RawMessage) string {
	if len(b) == 0 {
		return "null"
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return string(b)
	}
	s := buf.String()
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
