package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pluto-sched/pluto/internal/cron"
)

const maxCronNext = 1000

func (a *app) newCronCmd() *cobra.Command {
	cmd := groupCmd("cron", "Check cron expressions")
	cmd.Long = `cron checks cron expressions locally, without a server.

Syntaxes: Quartz with seconds (6 or 7 fields: sec min hour day-of-month
month day-of-week [year], day-of-week 1=SUN … 7=SAT, with ? L W #), standard
5-field cron (min hour day-of-month month day-of-week, 0 or 7=SUN), and
descriptors (@hourly, @daily, @weekly, @monthly, @yearly, @every 30s).`
	cmd.AddCommand(a.newCronNextCmd())
	return cmd
}

func (a *app) newCronNextCmd() *cobra.Command {
	var (
		count  int
		tz     string
		from   string
		output string
	)
	cmd := &cobra.Command{
		Use:   "next EXPR",
		Short: "Print the next fire times of a cron expression",
		Long: `next prints the next fire times of EXPR strictly after --from (default now),
one RFC 3339 time per line in the --tz zone, or a JSON array of RFC 3339
strings with -o json. The arguments are joined with spaces, so EXPR may be
quoted as one argument or not (quote * and ? from the shell).

--tz is the job's time zone: the expression's wall-clock fields are read in
it and the times are printed in it. It defaults to the local zone (the TZ
environment variable or the system's zone; UTC when neither is set).

Around a daylight saving time change, a wall time that does not exist
fires once at the end of the gap (02:30 → 03:00), and a wall time that
occurs twice fires once, at its first occurrence, unless the hour field is
* (hourly and finer schedules keep firing every real hour). @every D fires
at the multiples of D since 1970-01-01T00:00:00Z, whatever the zone.

An expression that never fires again prints nothing (a note goes to
stderr). An invalid EXPR, --tz, --from, -n or -o is a usage error (exit 2).`,
		Example: `  pluto cron next '0 0/15 * * * ?'
  pluto cron next '0 15 10 ? * 6L' --tz Europe/Berlin -n 12
  pluto cron next '30 2 * * *' --tz America/New_York --from 2026-03-07T12:00:00-05:00
  pluto cron next @every 90m -o json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErrorf("missing EXPR")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVarP(&count, "count", "n", 5, fmt.Sprintf("how many fire times to print (1-%d)", maxCronNext))
	f.StringVar(&tz, "tz", "Local", "IANA time zone of the schedule and the output, e.g. Europe/Berlin, UTC")
	f.StringVar(&from, "from", "", "print fire times strictly after this time: RFC 3339, or without offset in --tz (default now)")
	f.StringVarP(&output, "output", "o", "table", "output format: table or json")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if count < 1 || count > maxCronNext {
			return usageErrorf("invalid -n %d: want 1-%d", count, maxCronNext)
		}
		switch output {
		case "table", "json":
		default:
			return usageErrorf("invalid --output %q: want table or json", output)
		}
		loc, err := time.LoadLocation(tz)
		if err != nil {
			return usageErrorf("invalid --tz %q: unknown time zone (want an IANA name such as Europe/Berlin, or UTC or Local)", tz)
		}
		after := time.Now()
		if from != "" {
			if after, err = parseFrom(from, loc); err != nil {
				return usageErrorf("invalid --from %q: want an RFC 3339 time such as 2026-03-08T01:30:00-05:00, or 2026-03-08T01:30:00 in --tz", from)
			}
		}
		sched, err := cron.ParseIn(strings.Join(args, " "), loc)
		if err != nil {
			return usageErrorf("%v", err)
		}
		times := make([]string, 0, count)
		at := after
		for len(times) < count {
			next := sched.Next(at)
			if next.IsZero() {
				fmt.Fprintf(a.stderr, "no fire time after %s\n", at.In(loc).Format(time.RFC3339Nano))
				break
			}
			times = append(times, next.Format(time.RFC3339Nano))
			at = next
		}
		if output == "json" {
			raw, err := json.Marshal(times)
			if err != nil {
				return err
			}
			return printJSON(a.stdout, raw)
		}
		for _, t := range times {
			fmt.Fprintln(a.stdout, t)
		}
		return nil
	}
	return cmd
}

// parseFrom reads an RFC 3339 time, or a date-time without offset in loc.
func parseFrom(s string, loc *time.Location) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	var err error
	for _, layout := range []string{"2006-01-02T15:04:05.999999999", "2006-01-02T15:04", "2006-01-02"} {
		var t time.Time
		if t, err = time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, err
}
