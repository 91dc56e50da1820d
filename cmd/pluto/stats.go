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
		Short: "Show run counts per group, queue depth and age, and workers",
		Long: `stats prints, per group, the number of stored runs in each status, the
queue depth and the age of the oldest queued run, and the workers and slots
connected to the server (GET /api/v1/stats). The counts come from counters
the store keeps as runs change, so stats is cheap at any history size.`,
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
	_, err := fmt.Fprintf(w, "\ncallbacks owed: %d\n", st.CallbacksOwed)
	return err
}
