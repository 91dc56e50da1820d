package main

import (
	"fmt"
	"net/http"

	"github.com/spf13/cobra"

	"github.com/pluto-sched/pluto/internal/apijson"
)

func (a *app) newClusterCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Show the servers sharing the store and which one leads",
		Long: `cluster prints the store, the leader and its term, and every registered
server (GET /api/v1/cluster). With SQLite there is one server and it leads.`,
		Args: cobra.NoArgs,
	}
	co := a.addClientFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := co.client()
		if err != nil {
			return err
		}
		raw, err := c.do(cmd.Context(), http.MethodGet, "/cluster", nil, nil)
		if err != nil {
			return err
		}
		if co.json() {
			return printJSON(a.stdout, raw)
		}
		cl, err := decode[apijson.Cluster](raw)
		if err != nil {
			return err
		}
		leader := cl.Leader
		if leader == "" {
			leader = "(none)"
		}
		fmt.Fprintf(a.stdout, "store:  %s\nleader: %s (term %d)\n\n", cl.Store, leader, cl.Term)
		tw := newTable(a.stdout)
		fmt.Fprintln(tw, "ID\tHTTP\tGRPC\tLEADER\tALIVE\tSTARTED\tLAST SEEN")
		for _, s := range cl.Servers {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%v\t%s\t%s\n", s.ID, s.HTTP, s.GRPC, s.Leader, s.Alive, deref(s.StartedAt), deref(s.LastSeen))
		}
		return tw.Flush()
	}
	return cmd
}

func deref(s *string) string {
	if s == nil {
		return "-"
	}
	return *s
}
