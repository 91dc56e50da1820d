package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pluto-sched/pluto/internal/jobfile"
)

// maxJobFile bounds what pluto job apply reads.
const maxJobFile = 32 << 20

func (a *app) newJobCmd() *cobra.Command {
	cmd := groupCmd("job", "Define, list, pause, resume and trigger recurring jobs")
	cmd.Long = `A job is a stored definition: what to run (type, group, payload, retries,
timeout, routing) and when (a cron schedule in a time zone), with a misfire
policy for slots missed while no server ran and an overlap policy for slots
that come while an earlier run is still going. Each slot fires one run.`
	cmd.AddCommand(
		a.newJobApplyCmd(),
		a.newJobLsCmd(),
		a.newJobGetCmd(),
		a.newJobPauseCmd(true),
		a.newJobPauseCmd(false),
		a.newJobTriggerCmd(),
		a.newJobBackfillCmd(),
		a.newJobRmCmd(),
	)
	return cmd
}

func (a *app) newJobApplyCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Create or replace jobs from a YAML or JSON file",
		Long: `Create or replace the jobs defined in FILE (-f - reads standard input).

FILE is YAML or JSON (a file named *.json, or whose text starts with { or
[, is read as JSON): one job, a list of jobs, or several YAML documents
separated by ---. A job has the fields of the API's job object, in
snake_case: name (required), type (required), group, payload, schedule
(Quartz with seconds such as "0 0/1 * * * ?", standard 5-field cron, or
@every 30s, @daily, …), timezone (IANA, default UTC), misfire (skip, once,
all), misfire_max, overlap (allow, forbid, queue, replace), routing,
priority, timeout (e.g. "30m"), retries and paused. A job that is already
defined is replaced as a whole: fields left out take their defaults.

The whole file is read and checked first: a syntax error, an unknown field
or a value of the wrong type applies nothing. The jobs are then sent one
by one in file order. If the server rejects one (a bad schedule, an
unknown time zone, …) the command stops there and exits 1, naming the job
and the field; the jobs before it stay applied, and the ones after it are
not sent.`,
		Example: `  pluto job apply -f examples/jobs.yaml
  cat jobs.json | pluto job apply -f -`,
		Args: cobra.NoArgs,
	}
	co := a.addClientFlags(cmd)
	cmd.Flags().StringVarP(&file, "filename", "f", "", "YAML or JSON file with the jobs (- reads standard input)")
	_ = cmd.MarkFlagRequired("filename")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := co.client()
		if err != nil {
			return err
		}
		data, err := a.readJobFile(file)
		if err != nil {
			return err
		}
		docs, err := jobfile.Parse(data, strings.HasSuffix(strings.ToLower(file), ".json"))
		if err != nil {
			return failf("%s: %v", displayName(file), err)
		}
		saved := apiList[json.RawMessage]{Items: []json.RawMessage{}}
		for i, d := range docs {
			status, raw, err := c.doStatus(cmd.Context(), http.MethodPut, "/jobs/"+url.PathEscape(d.Job.Name), nil, d.Raw)
			if err != nil {
				applied := "nothing was applied"
				if i > 0 {
					applied = fmt.Sprintf("the %d job(s) before it were applied, the %d after it were not sent", i, len(docs)-i-1)
				}
				return failf("job %s in %s: %v (%s)", d.Label(), displayName(file), err, applied)
			}
			if co.json() {
				saved.Items = append(saved.Items, json.RawMessage(raw))
				continue
			}
			verb := "configured"
			if status == http.StatusCreated {
				verb = "created"
			}
			fmt.Fprintf(a.stdout, "job %s %s\n", d.Job.Name, verb)
		}
		if co.json() {
			b, err := json.Marshal(saved)
			if err != nil {
				return err
			}
			return printJSON(a.stdout, b)
		}
		return nil
	}
	return cmd
}

// readJobFile reads -f FILE ("-": standard input); an unreadable file is a
// usage error.
func (a *app) readJobFile(name string) ([]byte, error) {
	var (
		rd io.Reader
		f  *os.File
	)
	if name == "-" {
		rd = a.stdin
	} else {
		var err error
		if f, err = os.Open(name); err != nil {
			return nil, usageErrorf("invalid -f %s: %v", name, err)
		}
		defer f.Close()
		rd = f
	}
	b, err := io.ReadAll(io.LimitReader(rd, maxJobFile+1))
	if err != nil {
		return nil, usageErrorf("invalid -f %s: %v", name, err)
	}
	if len(b) > maxJobFile {
		return nil, usageErrorf("invalid -f %s: larger than %d MiB", name, maxJobFile>>20)
	}
	return b, nil
}

func displayName(file string) string {
	if file == "-" {
		return "standard input"
	}
	return file
}

func (a *app) newJobLsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "ls",
		Short:   "List jobs by name",
		Aliases: []string{"list"},
		Args:    cobra.NoArgs,
	}
	co := a.addClientFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return show(cmd, co, a.stdout, http.MethodGet, "/jobs", func(page apiList[apiJob]) error {
			return printJobs(a.stdout, page.Items)
		})
	}
	return cmd
}

func printJobs(w io.Writer, jobs []apiJob) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "NAME\tSCHEDULE\tTZ\tNEXT_FIRE\tPAUSED\tMISFIRE\tOVERLAP")
	for _, j := range jobs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%t\t%s\t%s\n", j.Name, orDash(&j.Schedule), jobZone(j),
			shortTime(j.NextFire), j.Paused, j.Misfire, j.Overlap)
	}
	return tw.Flush()
}

func jobZone(j apiJob) string {
	if j.Timezone == "" {
		return "UTC"
	}
	return j.Timezone
}

func (a *app) newJobGetCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "get NAME",
		Short: "Show one job",
		Args:  exactArgs("job name"),
	}
	co := a.addClientFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return show(cmd, co, a.stdout, http.MethodGet, "/jobs/"+url.PathEscape(args[0]), func(j apiJob) error {
			printJobDetail(a.stdout, j)
			return nil
		})
	}
	return cmd
}

func printJobDetail(w io.Writer, j apiJob) {
	tw := newTable(w)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("Name", j.Name)
	row("Type", j.Type)
	row("Group", j.Group)
	row("Schedule", orDash(&j.Schedule))
	row("Time zone", jobZone(j))
	row("Next fire", shortTime(j.NextFire))
	row("Paused", strconv.FormatBool(j.Paused))
	row("Misfire", fmt.Sprintf("%s (max %d)", j.Misfire, j.MisfireMax))
	row("Overlap", j.Overlap)
	row("Routing", orDash(j.Routing))
	row("Priority", strconv.Itoa(j.Priority))
	row("Timeout", orDash(j.Timeout))
	row("Retries", strconv.Itoa(j.Retries))
	if len(j.DependsOn) > 0 {
		deps := make([]string, len(j.DependsOn))
		for i, d := range j.DependsOn {
			deps[i] = d.Job
			if d.Window != "" {
				deps[i] += " (latest in " + d.Window + ")"
			}
		}
		row("Depends on", strings.Join(deps, ", "))
		row("Trigger rule", j.TriggerRule)
	}
	if j.Shards != 0 {
		row("Shards", strconv.Itoa(j.Shards))
	}
	if j.MinSuccess != 0 {
		row("Min success", strconv.FormatFloat(j.MinSuccess, 'g', -1, 64))
	}
	if j.Merge != nil {
		row("Merge", *j.Merge)
	}
	if j.Alerts != nil {
		row("Alerts", alertRulesText(j.Alerts))
	}
	row("Payload", compactJSON(j.Payload))
	row("Version", strconv.FormatInt(j.Version, 10))
	row("Created", shortTime(j.CreatedAt))
	row("Updated", shortTime(j.UpdatedAt))
	_ = tw.Flush()
}

func (a *app) newJobPauseCmd(pause bool) *cobra.Command {
	use, short, action := "pause NAME", "Stop firing a job's slots (runs already created go on)", "pause"
	if !pause {
		use, short, action = "resume NAME", "Fire a paused job again, from its next slot after now", "resume"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  exactArgs("job name"),
	}
	co := a.addClientFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return show(cmd, co, a.stdout, http.MethodPost, "/jobs/"+url.PathEscape(args[0])+"/"+action, func(j apiJob) error {
			printPaused(a.stdout, j, pause)
			return nil
		})
	}
	return cmd
}

func printPaused(w io.Writer, j apiJob, pause bool) {
	switch {
	case pause:
		fmt.Fprintf(w, "job %s paused\n", j.Name)
	case j.NextFire != nil:
		fmt.Fprintf(w, "job %s resumed; next fire %s\n", j.Name, shortTime(j.NextFire))
	default:
		fmt.Fprintf(w, "job %s resumed\n", j.Name)
	}
}

func (a *app) newJobTriggerCmd() *cobra.Command {
	var (
		payload     string
		wait        bool
		waitTimeout time.Duration
		logical     string
		cascade     bool
	)
	cmd := &cobra.Command{
		Use:   "trigger NAME",
		Short: "Run a job now, outside its schedule",
		Long: `Create one run of the job now, with the job's spec, and print its ID.
--payload replaces the job's payload for this run only (@FILE reads a file,
@- standard input). A paused job can be triggered. Without --logical-time
the run is a one-off (a debug or manual run): it has no logical time,
ignores the overlap policy and triggers nothing downstream.

--logical-time T makes it the job's run for the slot T (RFC 3339, or a date
2026-11-20 meaning midnight UTC): it waits for its upstream runs for T like
a scheduled one, and brings the runs for T of the jobs depending on it that
have no schedule; --cascade brings those of every job downstream. A slot
that has its run already keeps it (the command prints that run).

With --wait the command waits for the run to finish, prints it, and exits 0
only if it succeeded (1 otherwise).`,
		Example: `  pluto job trigger nightly-report
  pluto job trigger nightly-report --payload '{"date":"2026-11-20"}' --wait
  pluto job trigger load-orders --logical-time 2026-11-20 --cascade`,
		Args: exactArgs("job name"),
	}
	co := a.addClientFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&payload, "payload", "", "payload for this run instead of the job's (JSON, @FILE, @-)")
	f.BoolVar(&wait, "wait", false, "wait until the run finishes; exit 1 unless it succeeded")
	f.DurationVar(&waitTimeout, "wait-timeout", 0, "with --wait, give up after this long (0: never)")
	f.StringVar(&logical, "logical-time", "", "the slot this run is for (RFC 3339, or a date such as 2026-11-20: midnight UTC)")
	f.BoolVar(&cascade, "cascade", false, "with --logical-time, also create the runs for that slot of every job downstream")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := co.client()
		if err != nil {
			return err
		}
		in := map[string]any{}
		if payload != "" {
			p, err := a.readPayload(payload)
			if err != nil {
				return err
			}
			in["payload"] = p
		}
		if logical != "" {
			t, err := parseLogicalTime(logical)
			if err != nil {
				return usageErrorf("invalid --logical-time %q: %v", logical, err)
			}
			in["logical_time"] = t.Format(time.RFC3339Nano)
		}
		if cascade {
			if logical == "" {
				return usageErrorf("--cascade needs --logical-time: a run with no logical time triggers nothing downstream")
			}
			in["cascade"] = true
		}
		var body any
		if len(in) > 0 {
			body = in
		}
		if waitTimeout < 0 {
			return usageErrorf("invalid --wait-timeout %s: must not be negative", waitTimeout)
		}
		ctx := cmd.Context()
		raw, err := c.do(ctx, http.MethodPost, "/jobs/"+url.PathEscape(args[0])+"/trigger", nil, body)
		if err != nil {
			return err
		}
		run, err := decode[apiRun](raw)
		if err != nil {
			return err
		}
		if !wait {
			if co.json() {
				return printJSON(a.stdout, raw)
			}
			fmt.Fprintln(a.stdout, run.ID)
			return nil
		}
		if !co.json() {
			fmt.Fprintf(a.stderr, "triggered %s (%s); waiting for it to finish…\n", run.ID, run.Status)
		}
		if !run.Terminal() {
			raw, run, err = c.waitRun(ctx, run.ID, waitTimeout)
		}
		return a.finishWait(co, raw, run, err)
	}
	return cmd
}

// parseLogicalTime reads an RFC 3339 time or a date (midnight UTC).
func parseLogicalTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("want an RFC 3339 time such as 2026-11-20T02:00:00Z or a date such as 2026-11-20")
	}
	return t, nil
}

func (a *app) newJobRmCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "rm NAME",
		Short:   "Delete a job (its runs stay; runs still going finish)",
		Aliases: []string{"delete"},
		Args:    exactArgs("job name"),
	}
	co := a.addClientFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := co.client()
		if err != nil {
			return err
		}
		if _, err := c.do(cmd.Context(), http.MethodDelete, "/jobs/"+url.PathEscape(args[0]), nil, nil); err != nil {
			return err
		}
		if !co.json() {
			fmt.Fprintf(a.stdout, "job %s deleted\n", args[0])
		}
		return nil
	}
	return cmd
}
