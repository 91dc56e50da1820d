package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pluto-sched/pluto/internal/apijson"
	"github.com/pluto-sched/pluto/internal/store"
)

func (a *app) newStatsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "stats",
		Short: "Show run counts, throughput and dispatch latency per group, queue depth and age, and workers",
		Long: `stats prints, per group, the number of stored runs in each status, the
queue depth and the age of the oldest queued run, and the workers and slots
connected to the server (GET /api/v1/stats); then the runs that ended in the
last minute, hour and day (all ends, and failed or timed out ones) per group
and job, and the dispatch latency (submit or due time to start) over the last
minute per group. The counts come from counters and time buckets the store
keeps as runs change, so stats is cheap at any history size. -o json prints
every status of every window.`,
		Args: cobra.NoArgs,
	}
	co := a.addClientFlags(cmd)
	var group, job string
	cmd.Flags().StringVar(&group, "group", "", "only this group")
	cmd.Flags().StringVar(&job, "job", "", "only the runs of this job")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := co.client()
		if err != nil {
			return err
		}
		q := url.Values{}
		if group != "" {
			q.Set("group", group)
		}
		if job != "" {
			q.Set("job", job)
		}
		raw, err := c.do(cmd.Context(), http.MethodGet, "/stats", q, nil)
		if err != nil {
			return err
		}
		if co.json() {
			return printJSON(a.stdout, raw)
		}
		st, err := decode[apijson.Stats](raw)
		if err != nil {
			return err
		}
		return printStats(a.stdout, st)
	}
	return cmd
}

// statsColumns are the statuses the table shows, in lifecycle order.
var statsColumns = store.AllStatuses

func printStats(w io.Writer, st apijson.Stats) error {
	tw := newTable(w)
	head := []string{"GROUP"}
	for _, s := range statsColumns {
		head = append(head, strings.ToUpper(string(s)))
	}
	head = append(head, "OLDEST QUEUED", "WORKERS", "SLOTS")
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	row := func(name string, counts map[string]int64, age string, workers, slots int) {
		cells := []string{name}
		for _, s := range statsColumns {
			cells = append(cells, fmt.Sprint(counts[string(s)]))
		}
		cells = append(cells, age, fmt.Sprint(workers), fmt.Sprint(slots))
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	for _, g := range st.Groups {
		age := "-"
		if g.QueueDepth > 0 {
			age = fmt.Sprintf("%.1fs", g.OldestQueuedAgeSeconds)
		}
		row(g.Group, g.Counts, age, g.Workers, g.Slots)
	}
	row("(total)", st.Totals.Counts, "", st.Totals.Workers, st.Totals.Slots)
	if err := tw.Flush(); err != nil {
		return err
	}
	if _, err := fmt.Fprintln(w); err != nil {
		return err
	}
	if err := printThroughput(w, st); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\ncallbacks owed: %d\n", st.CallbacksOwed)
	return err
}

// printThroughput prints the ends per window (all, and failed or timed
// out) per group and job, and each group's dispatch latency.
func printThroughput(w io.Writer, st apijson.Stats) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "GROUP\tJOB\tENDED 1M\tENDED 1H\tENDED 1D\tFAILED 1H\tFAILED 1D\tLATENCY P50\tLATENCY P99\tSTARTS 1M")
	row := func(group, job string, tp apijson.Throughput, lat string) {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\n", group, job, sum(tp.LastMinute), sum(tp.LastHour), sum(tp.LastDay),
			failed(tp.LastHour), failed(tp.LastDay), lat)
	}
	for _, g := range st.Groups {
		lat := "-\t-\t0"
		if l := g.DispatchLatencySeconds; l.Samples > 0 {
			lat = fmt.Sprintf("%s\t%s\t%d", seconds(l.P50), seconds(l.P99), l.Samples)
		}
		row(g.Group, "*", g.Throughput, lat)
		for _, j := range g.Jobs {
			if j.Job != "" && sum(j.Throughput.LastDay)+sum(j.Throughput.LastMinute) > 0 {
				row("", j.Job, j.Throughput, "\t\t")
			}
		}
	}
	row("(total)", "", st.Totals.Throughput, "\t\t")
	return tw.Flush()
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

func failed(m map[string]int64) int64 {
	return m[string(store.StatusFailed)] + m[string(store.StatusTimedOut)]
}

// seconds formats a latency for the table: ms below a second.
func seconds(s float64) string {
	if s < 1 {
		return fmt.Sprintf("%.1fms", s*1000)
	}
	return fmt.Sprintf("%.2fs", s)
}
