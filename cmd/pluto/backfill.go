package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pluto-sched/pluto/internal/apijson"
)

type (
	apiBackfill = apijson.Backfill
	apiPlan     = apijson.BackfillPlan
)

func (a *app) newJobBackfillCmd() *cobra.Command {
	var (
		from, to, order, rerun string
		parallel               int
		cascade, dryRun        bool
	)
	cmd := &cobra.Command{
		Use:   "backfill NAME --from T --to T",
		Short: "Run a job over the past slots of a range (补数据), optionally with its downstream jobs",
		Long: `Create a backfill: one run of the job per slot of its schedule in
[--from, --to] (a slot per day, at midnight in its time zone, for a job
with no schedule), at most --parallel slots at once, in --order. With
--cascade each slot also gets the runs for it of every job downstream,
which wait for that slot's upstream runs. A slot that has a run already
keeps it, unless --rerun says to retry it (failed: a run that did not
succeed; all: any ended run).

--dry-run prints the plan and creates nothing: the slots, what each gets,
the jobs each runs, and an estimate from the jobs' recent runs.

The backfill is stored and driven by the leader: it survives restarts and
leader changes. Follow it with pluto backfill get ID.`,
		Example: `  pluto job backfill load-orders --from 2026-11-01 --to 2026-11-30 --parallel 4 --cascade --dry-run
  pluto job backfill load-orders --from 2026-11-01 --to 2026-11-30 --parallel 4 --cascade`,
		Args: exactArgs("job name"),
	}
	co := a.addClientFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "first slot (RFC 3339, or a date: midnight UTC)")
	f.StringVar(&to, "to", "", "last slot (RFC 3339, or a date: midnight UTC)")
	f.IntVar(&parallel, "parallel", 1, "slots running at once")
	f.BoolVar(&cascade, "cascade", false, "also run every downstream job for each slot")
	f.StringVar(&order, "order", "asc", "asc (oldest slot first) or desc")
	f.StringVar(&rerun, "rerun", "none", "slots with a run: none (keep it), failed (retry it unless it succeeded) or all")
	f.BoolVar(&dryRun, "dry-run", false, "print the plan; create nothing")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		body := map[string]any{"parallel": parallel, "cascade": cascade, "order": order, "rerun": rerun, "dry_run": dryRun}
		for _, fl := range []struct{ name, v string }{{"from", from}, {"to", to}} {
			if fl.v == "" {
				return usageErrorf("--%s is required", fl.name)
			}
			t, err := parseLogicalTime(fl.v)
			if err != nil {
				return usageErrorf("invalid --%s %q: %v", fl.name, fl.v, err)
			}
			body[fl.name] = t.Format(time.RFC3339Nano)
		}
		c, err := co.client()
		if err != nil {
			return err
		}
		raw, err := c.do(cmd.Context(), http.MethodPost, "/jobs/"+url.PathEscape(args[0])+"/backfill", nil, body)
		if err != nil {
			return err
		}
		if co.json() {
			return printJSON(a.stdout, raw)
		}
		if dryRun {
			p, err := decode[apiPlan](raw)
			if err != nil {
				return err
			}
			return printPlan(a.stdout, p, parallel)
		}
		b, err := decode[apiBackfill](raw)
		if err != nil {
			return err
		}
		fmt.Fprintln(a.stdout, b.ID)
		return nil
	}
	return cmd
}

func printPlan(w io.Writer, p apiPlan, parallel int) error {
	fmt.Fprintf(w, "jobs per slot: %s\n", strings.Join(p.Jobs, ", "))
	fmt.Fprintf(w, "%d slots: %d to create, %d to rerun, %d kept; about %s at --parallel %d\n",
		len(p.Slots), p.Create, p.Rerun, p.Keep, time.Duration(p.EstimateSeconds*float64(time.Second)).Round(time.Second), parallel)
	tw := newTable(w)
	fmt.Fprintln(tw, "LOGICAL_TIME\tACTION\tRUN\tSTATUS")
	for _, s := range p.Slots {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.LogicalTime, s.Action, orDash(s.RunID), orDash(s.Status))
	}
	return tw.Flush()
}

func (a *app) newBackfillCmd() *cobra.Command {
	cmd := groupCmd("backfill", "List, follow, pause, resume and cancel backfills (pluto job backfill creates them)")
	ls := &cobra.Command{Use: "ls", Short: "List backfills, newest first", Args: cobra.NoArgs}
	lsOpts := a.addClientFlags(ls)
	ls.RunE = func(cmd *cobra.Command, args []string) error {
		return show(cmd, lsOpts, a.stdout, http.MethodGet, "/backfills", func(l struct{ Items []apiBackfill }) error {
			tw := newTable(a.stdout)
			fmt.Fprintln(tw, "ID\tJOB\tFROM\tTO\tSTATE\tSTARTED\tKEPT\tNEXT")
			for _, b := range l.Items {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", b.ID, b.Job, b.From, b.To, b.State, b.Started, b.Kept, orDash(b.Next))
			}
			return tw.Flush()
		})
	}
	get := &cobra.Command{Use: "get ID", Short: "Show a backfill and its progress per job", Args: exactArgs("backfill ID")}
	getOpts := a.addClientFlags(get)
	get.RunE = func(cmd *cobra.Command, args []string) error {
		return show(cmd, getOpts, a.stdout, http.MethodGet, "/backfills/"+url.PathEscape(args[0]), func(b apiBackfill) error {
			printBackfill(a.stdout, b)
			return nil
		})
	}
	cmd.AddCommand(ls, get)
	for _, action := range []string{"pause", "resume", "cancel"} {
		short := map[string]string{
			"pause":  "Start no more slots (runs going finish)",
			"resume": "Start slots again",
			"cancel": "Start no more slots and cancel the unfinished runs of its range",
		}[action]
		c := &cobra.Command{Use: action + " ID", Short: short, Args: exactArgs("backfill ID")}
		co := a.addClientFlags(c)
		c.RunE = func(cmd *cobra.Command, args []string) error {
			return show(cmd, co, a.stdout, http.MethodPost, "/backfills/"+url.PathEscape(args[0])+"/"+action, func(b apiBackfill) error {
				fmt.Fprintf(a.stdout, "backfill %s %s\n", b.ID, b.State)
				return nil
			})
		}
		cmd.AddCommand(c)
	}
	return cmd
}

func printBackfill(w io.Writer, b apiBackfill) {
	tw := newTable(w)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("ID", b.ID)
	row("Job", b.Job)
	row("Range", b.From+" .. "+b.To+" ("+b.Order+")")
	row("Parallel", strconv.Itoa(b.Parallel))
	row("Cascade", strconv.FormatBool(b.Cascade))
	row("Rerun", b.Rerun)
	row("State", b.State)
	row("Next slot", orDash(b.Next))
	row("Slots", fmt.Sprintf("%d started, %d kept", b.Started, b.Kept))
	row("Created", orDash(b.CreatedAt))
	row("Finished", orDash(b.FinishedAt))
	_ = tw.Flush()
	tw = newTable(w)
	fmt.Fprintln(tw, "\nJOB\tDONE\tRUNNING\tFAILED")
	for _, p := range b.Progress {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\n", p.Job, p.Done, p.Running, p.Failed)
	}
	_ = tw.Flush()
}
