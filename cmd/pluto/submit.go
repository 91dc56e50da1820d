package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pluto-sched/pluto/internal/dur"
)

// submitBody is the POST /api/v1/runs body.
type submitBody struct {
	Type       string          `json:"type"`
	Group      string          `json:"group"`
	Payload    json.RawMessage `json:"payload,omitempty"`
	Priority   int             `json:"priority,omitempty"`
	Delay      string          `json:"delay,omitempty"`
	RunAt      string          `json:"run_at,omitempty"`
	Timeout    string          `json:"timeout,omitempty"`
	Retries    int             `json:"retries,omitempty"`
	Key        string          `json:"key,omitempty"`
	Routing    string          `json:"routing,omitempty"`
	RoutingKey string          `json:"routing_key,omitempty"`
	// CallbackURL receives the run's outcome when it ends.
	CallbackURL string `json:"callback_url,omitempty"`
	// Fan-out: children, how many must succeed, the merge handler.
	Shards     int     `json:"shards,omitempty"`
	MinSuccess float64 `json:"min_success,omitempty"`
	Merge      string  `json:"merge,omitempty"`
}

func (a *app) newSubmitCmd() *cobra.Command {
	var (
		body        submitBody
		payload     string
		delay       time.Duration
		at          string
		timeout     time.Duration
		wait        bool
		waitTimeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "submit --type T [flags]",
		Short: "Submit a run",
		Long: `Submit a one-shot run of handler type T to a worker group.

The payload is any JSON value; --payload @FILE reads it from a file and
--payload @- from standard input. With --wait the command waits for the run
to finish, prints it, and exits 0 only if it succeeded (1 otherwise).`,
		Example: `  pluto submit --type shell --payload '{"cmd":"echo hello"}' --wait
  pluto submit --type http --payload '{"url":"https://example.com"}' --delay 5m
  pluto submit --type noop --key order-42 -o json`,
		Args: cobra.NoArgs,
	}
	co := a.addClientFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&body.Type, "type", "", "handler type to run (required), e.g. shell, http, noop")
	f.StringVar(&body.Group, "group", "default", "worker group that runs it")
	f.StringVar(&payload, "payload", "", "payload as JSON (@FILE reads a file, @- standard input)")
	f.Var(dur.Value{D: &delay}, "delay", "run after this delay, e.g. 30s, 5m, 3d, 1w")
	f.StringVar(&at, "at", "", "run at this time (RFC 3339, e.g. 2026-11-21T08:00:00Z)")
	f.IntVar(&body.Priority, "priority", 0, "priority; higher runs first")
	f.Var(dur.Value{D: &timeout}, "timeout", "time limit of one attempt, e.g. 30m, 2d (0: none)")
	f.IntVar(&body.Retries, "retries", 0, "retries after a failed attempt")
	f.StringVar(&body.Key, "key", "", "idempotency key: resubmitting with the same key returns the existing run")
	f.StringVar(&body.Routing, "routing", "", "routing strategy (least-recent, least-loaded, round-robin, random, hash, failover, busy-over, least-frequent; broadcast or shard-broadcast: one child per worker)")
	f.StringVar(&body.RoutingKey, "routing-key", "", "key for --routing hash")
	f.StringVar(&body.CallbackURL, "callback", "", "POST the run's outcome to this http(s) URL when it ends (retried until a 2xx answer or expiry)")
	f.IntVar(&body.Shards, "shards", 0, "fan out: run this many children of the payload across the group; the run returned is their parent, whose result is theirs in shard order")
	f.Float64Var(&body.MinSuccess, "min-success", 0, "with --shards or a broadcast: how many children must succeed (a count, or a fraction such as 0.9; default all)")
	f.StringVar(&body.Merge, "merge", "", "with --shards or a broadcast: a handler type that merges the children's results into the parent's")
	f.BoolVar(&wait, "wait", false, "wait until the run finishes; exit 1 unless it succeeded")
	f.DurationVar(&waitTimeout, "wait-timeout", 0, "with --wait, give up after this long (0: never)")
	_ = cmd.MarkFlagRequired("type")
	cmd.MarkFlagsMutuallyExclusive("delay", "at")

	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := co.client()
		if err != nil {
			return err
		}
		if strings.TrimSpace(body.Type) == "" {
			return usageErrorf("--type must not be empty")
		}
		if strings.TrimSpace(body.Group) == "" {
			return usageErrorf("--group must not be empty")
		}
		if payload != "" {
			p, err := a.readPayload(payload)
			if err != nil {
				return err
			}
			body.Payload = p
		}
		if delay < 0 {
			return usageErrorf("invalid --delay %s: must not be negative", delay)
		}
		if delay > 0 {
			body.Delay = delay.String()
		}
		if at != "" {
			t, err := time.Parse(time.RFC3339Nano, at)
			if err != nil {
				return usageErrorf("invalid --at %q: want an RFC 3339 time such as 2026-11-21T08:00:00Z", at)
			}
			body.RunAt = t.Format(time.RFC3339Nano)
		}
		if timeout < 0 {
			return usageErrorf("invalid --timeout %s: must not be negative", timeout)
		}
		if timeout > 0 {
			body.Timeout = timeout.String()
		}
		if body.Retries < 0 {
			return usageErrorf("invalid --retries %d: must not be negative", body.Retries)
		}
		if waitTimeout < 0 {
			return usageErrorf("invalid --wait-timeout %s: must not be negative", waitTimeout)
		}

		ctx := cmd.Context()
		raw, err := c.do(ctx, http.MethodPost, "/runs", nil, body)
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
			printRunTable(a.stdout, []apiRun{run})
			return nil
		}
		if !co.json() {
			fmt.Fprintf(a.stderr, "submitted %s (%s); waiting for it to finish…\n", run.ID, run.Status)
		}
		if !run.Terminal() {
			raw, run, err = c.waitRun(ctx, run.ID, waitTimeout)
		}
		return a.finishWait(co, raw, run, err)
	}
	return cmd
}

// readPayload reads and checks --payload.
func (a *app) readPayload(v string) (json.RawMessage, error) {
	b := []byte(v)
	if name, ok := strings.CutPrefix(v, "@"); ok {
		var err error
		if name == "-" {
			b, err = io.ReadAll(a.stdin)
		} else {
			b, err = os.ReadFile(name)
		}
		if err != nil {
			return nil, usageErrorf("invalid --payload %s: %v", v, err)
		}
	}
	if !json.Valid(b) {
		var x any
		err := json.Unmarshal(b, &x)
		return nil, usageErrorf("invalid --payload: not valid JSON (%v); e.g. --payload '{\"cmd\":\"echo hi\"}'", err)
	}
	return json.RawMessage(strings.TrimSpace(string(b))), nil
}

// finishWait prints the run a wait ended with and turns its outcome into
// the exit code: 0 only when it succeeded.
func (a *app) finishWait(co *clientOpts, raw []byte, run apiRun, err error) error {
	if err != nil && raw == nil {
		return err
	}
	if co.json() {
		if perr := printJSON(a.stdout, raw); perr != nil {
			return perr
		}
	} else {
		printRunDetail(a.stdout, run)
	}
	switch {
	case err == errWaitTimeout:
		return failf("timed out waiting for run %s (status %s)", run.ID, run.Status)
	case err != nil:
		return err
	case run.Status == "succeeded":
		return nil
	case run.Error != nil && *run.Error != "":
		return failf("run %s %s: %s", run.ID, run.Status, *run.Error)
	default:
		return failf("run %s %s", run.ID, run.Status)
	}
}
