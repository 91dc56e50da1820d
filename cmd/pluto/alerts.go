package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pluto-sched/pluto/internal/apijson"
)

type apiAlert = apijson.Alert

// newAlertCmd is `pluto alert`: the alerts jobs' rules raised, and the
// groups' default rules.
func (a *app) newAlertCmd() *cobra.Command {
	cmd := groupCmd("alert", "List alerts, and set the default alert rules of a group")
	cmd.Aliases = []string{"alerts"}
	cmd.AddCommand(a.newAlertLsCmd(), a.newAlertRulesCmd())
	return cmd
}

func (a *app) newAlertLsCmd() *cobra.Command {
	var (
		job, run, cursor string
		limit            int
	)
	cmd := &cobra.Command{Use: "ls", Short: "List alerts, newest first", Args: cobra.NoArgs,
		Example: `  pluto alert ls
  pluto alert ls --job load-orders --limit 20`}
	co := a.addClientFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&job, "job", "", "only this job's alerts")
	f.StringVar(&run, "run", "", "only this run's alerts")
	f.StringVar(&cursor, "cursor", "", "the next page, as the last one said")
	f.IntVar(&limit, "limit", 100, "alerts per page (1 to 1000)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		q := url.Values{}
		for k, v := range map[string]string{"job": job, "run": run, "cursor": cursor} {
			if v != "" {
				q.Set(k, v)
			}
		}
		if err := setLimit(q, cmd.Flags().Changed("limit"), limit); err != nil {
			return err
		}
		return showPage(cmd, co, a.stdout, a.stderr, "/alerts", q, "alerts", func(as []apiAlert) error {
			printAlerts(a.stdout, as)
			return nil
		})
	}
	return cmd
}

func printAlerts(w io.Writer, as []apiAlert) {
	tw := newTable(w)
	fmt.Fprintln(tw, "CREATED\tRULE\tJOB\tRUN\tWEBHOOK\tREASON")
	for _, al := range as {
		hook := "-"
		if al.Webhook != nil {
			hook = al.Webhook.State
		}
		job := al.Job
		if job == "" {
			job = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", orDash(al.CreatedAt), al.Rule, job, orDash(al.RunID), hook,
			strings.Join(strings.Fields(al.Reason), " "))
	}
	_ = tw.Flush()
}

func (a *app) newAlertRulesCmd() *cobra.Command {
	var (
		file  string
		clear bool
	)
	cmd := &cobra.Command{
		Use:   "group GROUP",
		Short: "Show or set a group's default alert rules",
		Long: `Show a group's default alert rules, which its jobs without rules of
their own (and its one-off runs) follow; --set FILE replaces them with the
rules object in FILE ("-" for stdin), --clear removes them. The object is
a job's "alerts": on, sla, max_duration, webhook, format.`,
		Example: `  pluto alert group etl
  echo '{"on": ["failed", "timed_out"], "webhook": "https://hooks.example.com/x", "format": "slack"}' | pluto alert group etl --set -
  pluto alert group etl --clear`,
		Args: exactArgs("group"),
	}
	co := a.addClientFlags(cmd)
	cmd.Flags().StringVar(&file, "set", "", "replace the rules with the JSON object in this file (- for stdin)")
	cmd.Flags().BoolVar(&clear, "clear", false, "remove the group's rules")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		path := "/groups/" + url.PathEscape(args[0]) + "/alerts"
		if file != "" && clear {
			return usageErrorf("--set and --clear go alone")
		}
		c, err := co.client()
		if err != nil {
			return err
		}
		switch {
		case clear:
			if _, err := c.do(cmd.Context(), http.MethodDelete, path, nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "group %s: no default alert rules\n", args[0])
			return nil
		case file != "":
			var in io.Reader = a.stdin
			if file != "-" {
				fh, err := os.Open(file)
				if err != nil {
					return usageErrorf("--set: %v", err)
				}
				defer fh.Close()
				in = fh
			}
			var body json.RawMessage
			if err := json.NewDecoder(in).Decode(&body); err != nil {
				return usageErrorf("--set: not a JSON object: %v", err)
			}
			raw, err := c.do(cmd.Context(), http.MethodPut, path, nil, body)
			if err != nil {
				return err
			}
			return printJSON(a.stdout, raw)
		}
		raw, err := c.do(cmd.Context(), http.MethodGet, path, nil, nil)
		if err != nil {
			return err
		}
		return printJSON(a.stdout, raw)
	}
	return cmd
}

// alertRulesText is rules on one line.
func alertRulesText(r *apijson.AlertRules) string {
	var parts []string
	if len(r.On) > 0 {
		parts = append(parts, "on "+strings.Join(r.On, ", "))
	}
	if r.SLA != "" {
		parts = append(parts, "succeeded by "+r.SLA)
	}
	if r.MaxDuration != nil {
		parts = append(parts, "runs longer than "+*r.MaxDuration)
	}
	if len(parts) == 0 {
		return "none (the group's default is off)"
	}
	if r.Webhook != "" {
		u, err := url.Parse(r.Webhook)
		host := r.Webhook
		if err == nil {
			host = u.Host
		}
		format := r.Format
		if format == "" {
			format = "json"
		}
		parts = append(parts, "to "+host+" ("+format+")")
	}
	return strings.Join(parts, "; ")
}
