package main

import (
	"fmt"
	"io"
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
		return show(cmd, co, a.stdout, http.MethodGet, "/cluster", func(cl apijson.Cluster) error {
			return printCluster(a.stdout, cl)
		})
	}
	return cmd
}

func printCluster(w io.Writer, cl apijson.Cluster) error {
	leader := cl.Leader
	if leader == "" {
		leader = "(none)"
	}
	fmt.Fprintf(w, "store:  %s\nleader: %s (term %d)\n\n", cl.Store, leader, cl.Term)
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tHTTP\tGRPC\tLEADER\tALIVE\tSTARTED\tLAST SEEN")
	for _, s := range cl.Servers {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%v\t%s\t%s\n", s.ID, s.HTTP, s.GRPC, s.Leader, s.Alive, deref(s.StartedAt), deref(s.LastSeen))
	}
	return tw.Flush()
}

func deref(s *string) string {
	if s == nil {
		return "-"
	}
	return *s
}
