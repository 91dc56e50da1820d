package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pluto-sched/pluto/internal/auth"
	"github.com/pluto-sched/pluto/internal/dur"
)

// apiToken is a token as the API shows it (never its secret, except
// Token in the answer to a create).
type apiToken struct {
	Name      string   `json:"name"`
	Role      string   `json:"role"`
	Groups    []string `json:"groups"`
	CreatedAt *string  `json:"created_at"`
	ExpiresAt *string  `json:"expires_at"`
	RevokedAt *string  `json:"revoked_at"`
	Token     string   `json:"token"`
}

func (a *app) newTokenCmd() *cobra.Command {
	cmd := groupCmd("token", "Create, list and revoke API tokens")
	cmd.Long = `A token is a name, a role, optionally the run groups it is limited to,
and an optional expiry. Requests carry its secret (plt_…) as a bearer token:
--token or PLUTO_TOKEN for the CLI, client.WithToken and
worker.Options.Token for the Go packages.

Roles:
  admin     everything, including tokens and the audit trail
  operator  read, submit, change runs and jobs, control workers
  viewer    read only
  client    read, submit and change runs (what an application needs)
  worker    connect a worker (pluto worker --token)

A token limited to groups (--groups) acts only on runs and jobs of those
groups and can never manage tokens. Managing tokens needs an admin token.`
	cmd.AddCommand(a.newTokenCreateCmd(), a.newTokenLsCmd(), a.newTokenRevokeCmd())
	return cmd
}

// tokenCreate is the body of POST /api/v1/tokens.
type tokenCreate struct {
	Name    string   `json:"name"`
	Role    string   `json:"role"`
	Groups  []string `json:"groups"`
	Expires string   `json:"expires,omitempty"`
}

// parseTokenCreate checks the flags of token create locally, so a typo is
// a usage error naming the flag rather than a round trip to the server.
func parseTokenCreate(name, role string, groups []string, expires string) (tokenCreate, error) {
	if name == "" {
		return tokenCreate{}, usageErrorf("--name is required: the token's name, e.g. --name ci-deploy")
	}
	if err := auth.ValidateName(name); err != nil {
		return tokenCreate{}, usageErrorf("invalid --name %q: %v", name, strings.TrimPrefix(err.Error(), "name: "))
	}
	if role == "" {
		return tokenCreate{}, usageErrorf("--role is required: admin, operator, viewer, client or worker")
	}
	r, err := auth.ParseRole(role)
	if err != nil {
		return tokenCreate{}, usageErrorf("invalid --role %q: want admin, operator, viewer, client or worker", role)
	}
	gs, err := auth.ValidateGroups(groups)
	if err != nil {
		return tokenCreate{}, usageErrorf("invalid --groups: %v", strings.TrimPrefix(err.Error(), "groups: "))
	}
	if gs == nil {
		gs = []string{} // all groups
	}
	if expires != "" {
		d, err := dur.Parse(expires)
		if err != nil || d <= 0 {
			return tokenCreate{}, usageErrorf("invalid --expires %q: want a positive duration such as 30d, 12h or 1w", expires)
		}
	}
	return tokenCreate{Name: name, Role: string(r), Groups: gs, Expires: expires}, nil
}

func (a *app) newTokenCreateCmd() *cobra.Command {
	var (
		name, role, expires string
		groups              []string
	)
	cmd := &cobra.Command{
		Use:   "create --name NAME --role ROLE [--groups G1,G2] [--expires 30d]",
		Short: "Create a token and print its secret (shown once)",
		Long: `Create a token and print it with its secret. The server keeps only a hash
of the secret: it is shown this once and cannot be read back. Store it
somewhere safe, or revoke the token and create another if it is lost.

--expires is a duration from now: Go units (h, m, s) plus d (24h) and w
(7d), e.g. 30d, 12h, 1w2d. Without it the token never expires.
--groups limits the token to those run groups (default: all groups).

With -o json the output is {"name","role","groups","expires_at","token"}
("groups" is [] for all groups, "expires_at" RFC 3339 or null).`,
		Example: `  pluto token create --name ci-deploy --role client --groups reports --expires 90d
  pluto token create --name builder-pool --role worker -o json
  pluto token create --name alice --role operator --expires 30d`,
		Args: cobra.NoArgs,
	}
	co := a.addClientFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "token name (letters, digits, '.', '_', '-'; required)")
	f.StringVar(&role, "role", "", "admin, operator, viewer, client or worker (required)")
	f.StringSliceVar(&groups, "groups", nil, "run groups the token is limited to (comma-separated; default all)")
	f.StringVar(&expires, "expires", "", "lifetime, e.g. 30d, 12h (default: never expires)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		body, err := parseTokenCreate(name, role, groups, expires)
		if err != nil {
			return err
		}
		c, err := co.client()
		if err != nil {
			return err
		}
		raw, err := c.do(cmd.Context(), http.MethodPost, "/tokens", nil, body)
		if err != nil {
			return err
		}
		if co.json() {
			return printJSON(a.stdout, raw)
		}
		tok, err := decode[apiToken](raw)
		if err != nil {
			return err
		}
		printCreatedToken(a.stdout, tok)
		return nil
	}
	return cmd
}

func printCreatedToken(w io.Writer, t apiToken) {
	tw := newTable(w)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("Name", t.Name)
	row("Role", t.Role)
	row("Groups", tokenGroups(t.Groups))
	row("Expires", tokenExpiry(t.ExpiresAt))
	row("Token", t.Token)
	_ = tw.Flush()
	fmt.Fprintln(w, "\nThe token is shown only once: store it now (it cannot be read back).")
}

func tokenGroups(gs []string) string {
	if len(gs) == 0 {
		return "all"
	}
	return strings.Join(gs, ",")
}

func tokenExpiry(s *string) string {
	if s == nil || *s == "" {
		return "never"
	}
	return shortTime(s)
}

func (a *app) newTokenLsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "ls",
		Short:   "List tokens, revoked ones included (never their secrets)",
		Aliases: []string{"list"},
		Args:    cobra.NoArgs,
	}
	co := a.addClientFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return show(cmd, co, a.stdout, http.MethodGet, "/tokens", func(page apiList[apiToken]) error {
			return printTokens(a.stdout, page.Items)
		})
	}
	return cmd
}

func printTokens(w io.Writer, toks []apiToken) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "NAME\tROLE\tGROUPS\tCREATED\tEXPIRES\tREVOKED")
	for _, t := range toks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.Name, t.Role, tokenGroups(t.Groups),
			shortTime(t.CreatedAt), tokenExpiry(t.ExpiresAt), shortTime(t.RevokedAt))
	}
	return tw.Flush()
}

func (a *app) newTokenRevokeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke a token: every server refuses it within a second",
		Long: `Revoke the token NAME. Requests with its secret are refused from then on
(at once in practice, within a second on every server). A revoked token
stays listed, with the time it was revoked; it cannot be reinstated.`,
		Example: `  pluto token revoke ci-deploy`,
		Args:    exactArgs("token name"),
	}
	co := a.addClientFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := auth.ValidateName(args[0]); err != nil {
			return usageErrorf("invalid token name %q: %v", args[0], strings.TrimPrefix(err.Error(), "name: "))
		}
		return show(cmd, co, a.stdout, http.MethodDelete, "/tokens/"+url.PathEscape(args[0]), func(t apiToken) error {
			fmt.Fprintf(a.stdout, "token %s revoked\n", t.Name)
			return nil
		})
	}
	return cmd
}
