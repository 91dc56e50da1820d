package client

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	"github.com/pluto-sched/pluto/internal/bearer"
	plutov1 "github.com/pluto-sched/pluto/internal/gen/pluto/v1"
)

// DefaultPollInterval is how long one server-side Wait long poll lasts
// before Client.Wait asks again (servers cap a poll at 60 s).
const DefaultPollInterval = 30 * time.Second

// serviceConfig picks the first server that answers (in the order given to
// Dial) and retries idempotent calls on another server when one is
// unavailable. Submit and Retry are not retried: a request that reached a
// server before it went away may have been applied.
const serviceConfig = `{
  "loadBalancingConfig": [{"pick_first": {}}],
  "methodConfig": [{
    "name": [
      {"service": "pluto.v1.ClientService", "method": "Get"},
      {"service": "pluto.v1.ClientService", "method": "List"},
      {"service": "pluto.v1.ClientService", "method": "Wait"},
      {"service": "pluto.v1.ClientService", "method": "Cancel"}
    ],
    "retryPolicy": {
      "maxAttempts": 5,
      "initialBackoff": "0.1s",
      "maxBackoff": "1s",
      "backoffMultiplier": 2,
      "retryableStatusCodes": ["UNAVAILABLE"]
    }
  }]
}`

// maxMsgSize bounds one request or response (a batch, a page of runs).
const maxMsgSize = 64 << 20

// Client talks to one Pluto deployment. It is safe for concurrent use;
// create one and share it.
type Client struct {
	conn    *grpc.ClientConn
	rpc     plutov1.ClientServiceClient
	timeout time.Duration
	poll    time.Duration
	spool   *spooler // nil without WithSpool
}

// Option configures Dial.
type Option func(*options)

type options struct {
	dial    []grpc.DialOption
	token   string
	tls     *tls.Config
	timeout time.Duration
	poll    time.Duration
	spool   spoolOptions
}

// WithToken sends token as a bearer token ("authorization: Bearer …") with
// every call.
func WithToken(token string) Option { return func(o *options) { o.token = token } }

// WithTLS connects with TLS using cfg (nil: the system roots). Without it
// the connection is plaintext.
func WithTLS(cfg *tls.Config) Option {
	return func(o *options) {
		if cfg == nil {
			cfg = &tls.Config{}
		}
		o.tls = cfg
	}
}

// WithTimeout bounds every call whose context has no deadline (0: no
// bound). It does not apply to Wait, which waits as long as its context
// allows.
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithPollInterval sets how long one server-side long poll of Wait lasts
// (default DefaultPollInterval; servers cap it at 60 s). Shorten it when a
// proxy between client and server cuts idle requests.
func WithPollInterval(d time.Duration) Option { return func(o *options) { o.poll = d } }

// WithDialOptions adds gRPC dial options; they are applied after the
// client's own, so they override them (for example
// grpc.WithTransportCredentials).
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) { o.dial = append(o.dial, opts...) }
}

// Dial returns a client of the Pluto servers at target: one gRPC address
// ("127.0.0.1:7071", or any gRPC target such as "dns:///pluto:7071") or a
// comma-separated list of host:port addresses ("a:7071,b:7071"). With a
// list the client uses the first server that answers and fails over to the
// others, in order, when it goes away.
//
// Dial does not wait for a connection; the first call connects. Close the
// client when done.
func Dial(target string, opts ...Option) (*Client, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	var addrs []string
	for a := range strings.SplitSeq(target, ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		return nil, errors.New("pluto: dial: no server address")
	}

	creds := insecure.NewCredentials()
	if o.tls != nil {
		creds = credentials.NewTLS(o.tls)
	}
	dial := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultServiceConfig(serviceConfig),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsgSize), grpc.MaxCallSendMsgSize(maxMsgSize)),
	}
	if o.token != "" {
		dial = append(dial, grpc.WithPerRPCCredentials(bearer.Token(o.token)))
	}

	grpcTarget := addrs[0]
	if len(addrs) > 1 {
		eps := make([]resolver.Endpoint, len(addrs))
		for i, a := range addrs {
			if strings.Contains(a, "/") {
				return nil, fmt.Errorf("pluto: dial: %q: a list of servers takes host:port addresses", a)
			}
			// ServerName makes each connection's :authority and TLS server
			// name that server's own, not the whole list.
			eps[i] = resolver.Endpoint{Addresses: []resolver.Address{{Addr: a, ServerName: a}}}
		}
		r := manual.NewBuilderWithScheme("pluto")
		r.InitialState(resolver.State{Endpoints: eps})
		dial = append(dial, grpc.WithResolvers(r))
		grpcTarget = r.Scheme() + ":///servers"
	}
	if o.spool.dir != "" {
		dial = append(dial, o.spool.connectParams())
	}
	dial = append(dial, o.dial...)

	conn, err := grpc.NewClient(grpcTarget, dial...)
	if err != nil {
		return nil, fmt.Errorf("pluto: dial %s: %w", target, err)
	}
	poll := o.poll
	if poll <= 0 {
		poll = DefaultPollInterval
	}
	c := &Client{conn: conn, rpc: plutov1.NewClientServiceClient(conn), timeout: o.timeout, poll: poll}
	if o.spool.dir != "" {
		if c.spool, err = startSpooler(c, o.spool); err != nil {
			conn.Close()
			return nil, err
		}
	}
	return c, nil
}

// Close closes the connection. Calls in flight fail. A client with a spool
// first stops its sender (a delivery in flight is abandoned; what it did
// not finish stays in the spool) and releases the spool.
func (c *Client) Close() error {
	if c.spool != nil {
		if err := c.spool.close(); err != nil {
			return errors.Join(err, c.conn.Close())
		}
	}
	return c.conn.Close()
}

// callCtx applies the default timeout to a context without a deadline.
func (c *Client) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.timeout > 0 {
		if _, ok := ctx.Deadline(); !ok {
			return context.WithTimeout(ctx, c.timeout)
		}
	}
	return ctx, func() {}
}

// RunSpec is a submission. Zero values mean the server's defaults: run now,
// priority 0, one attempt, no timeout, least-recent routing.
type RunSpec struct {
	// Type is the handler type a worker registered ("email.send"). Required.
	Type string
	// Group is the worker group that must run it. Required.
	Group string
	// Payload is marshalled to JSON and handed to the handler. A
	// json.RawMessage or []byte is sent as is and must be valid JSON; nil is
	// null.
	Payload any
	// Priority orders queued runs of a group: higher first.
	Priority int
	// Delay postpones the run; RunAt schedules it at a time. Set at most one.
	Delay time.Duration
	RunAt time.Time
	// Timeout bounds one attempt (0: none).
	Timeout time.Duration
	// Retries is how many failed attempts are retried (0: one attempt).
	Retries int
	// Key is an idempotency key: submitting a spec whose key already names a
	// run returns that run (Run.Existing) and creates nothing.
	Key string
	// Routing picks the worker: least-recent (default), least-loaded,
	// round-robin, random, hash (by RoutingKey), broadcast or failover.
	Routing    string
	RoutingKey string
	// Job names the stored job this run belongs to, if any.
	Job string
	// CallbackURL, if set, receives the run's outcome when it ends: the
	// server POSTs the run (its JSON, as Run marshals it) there, retrying
	// with back-off until an answer in 2xx or expiry (24 h by default).
	// Delivery is at least once: dedupe on the X-Pluto-Run-Id header. An
	// absolute http or https URL of at most 2048 bytes.
	CallbackURL string
	// Fan-out: Shards children that each get the payload, or one child per
	// element of Parts (each marshalled to JSON). The returned run is their
	// parent: running while they are, it ends succeeded with their results
	// as a JSON array in shard order — or, with Merge (a handler type), the
	// result of a merge run given {"parent", "results"} — or failed once
	// more children failed than MinSuccess allows (0: every child must
	// succeed; a fraction in (0, 1): that share). Wait on the parent.
	Shards     int
	Parts      []any
	MinSuccess float64
	Merge      string
}

func (s *RunSpec) toProto(index, n int) (*plutov1.RunSpec, error) {
	payload, err := marshalPayload(s.Payload)
	if err != nil {
		msg := err.Error()
		if n > 1 {
			msg = fmt.Sprintf("run %d: %s", index, msg)
		}
		return nil, &FieldError{Field: "payload", Message: msg}
	}
	var parts [][]byte
	if s.Parts != nil {
		parts = make([][]byte, len(s.Parts))
		for i, p := range s.Parts {
			b, err := marshalPayload(p)
			if err != nil {
				return nil, &FieldError{Field: fmt.Sprintf("parts[%d]", i), Message: err.Error()}
			}
			if b == nil {
				b = []byte("null")
			}
			parts[i] = b
		}
	}
	return &plutov1.RunSpec{
		Shards: int32(s.Shards), Parts: parts, MinSuccess: s.MinSuccess, Merge: s.Merge,
		Type:        s.Type,
		Group:       s.Group,
		Payload:     payload,
		Priority:    int32(s.Priority),
		DelayMs:     s.Delay.Milliseconds(),
		RunAtUnixMs: unixMs(s.RunAt),
		TimeoutMs:   s.Timeout.Milliseconds(),
		Retries:     int32(s.Retries),
		Key:         s.Key,
		Routing:     s.Routing,
		RoutingKey:  s.RoutingKey,
		Job:         s.Job,
		CallbackUrl: s.CallbackURL,
	}, nil
}

func marshalPayload(p any) ([]byte, error) {
	var raw []byte
	switch v := p.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		raw = v
	case []byte:
		raw = v
	default:
		b, err := json.Marshal(p)
		if err != nil {
			return nil, err
		}
		return b, nil
	}
	if len(raw) == 0 {
		return nil, nil
	}
	if !json.Valid(raw) {
		return nil, errors.New("not valid JSON")
	}
	return raw, nil
}

// Submit submits one run and returns it as stored. If spec.Key already
// named a run, that run is returned with Existing set.
//
// On a client with a spool (WithSpool), a spec without a Key gets one, and
// a submission that no server takes is kept in the spool: Submit then
// returns a *SpooledError (errors.Is(err, ErrSpooled)) holding the key.
func (c *Client) Submit(ctx context.Context, spec RunSpec) (*Run, error) {
	runs, err := c.SubmitBatch(ctx, []RunSpec{spec})
	if err != nil {
		return nil, err
	}
	return runs[0], nil
}

// SubmitBatch submits several runs in one request; the server stores all
// of them or, on error, none. The runs come back in the order of specs;
// Run.Existing is true for a spec whose Key already named a run. The whole
// batch travels in one message, so keep it well under the server's message
// limit (4 MiB + 4 × its payload limit, by default 8 MiB).
//
// When every spec has a Key, a request that fails with ErrUnavailable is
// resent (up to 5 attempts, on the next server when Dial was given
// several): the keys make that safe. Without keys ErrUnavailable is
// returned, since the request may have been stored before its server went
// away.
//
// On a client with a spool (WithSpool) the request is made once; each spec
// without a Key gets one, and if no server takes the batch it is kept in
// the spool and a *SpooledError is returned (see WithSpool).
func (c *Client) SubmitBatch(ctx context.Context, specs []RunSpec) ([]*Run, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	if c.spool != nil {
		return c.spool.submit(ctx, specs)
	}
	req := &plutov1.SubmitRequest{Runs: make([]*plutov1.RunSpec, len(specs))}
	for i := range specs {
		p, err := specs[i].toProto(i, len(specs))
		if err != nil {
			return nil, err
		}
		req.Runs[i] = p
	}
	keyed := true
	for i := range specs {
		keyed = keyed && specs[i].Key != ""
	}
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	// Resending is safe only when keys make it idempotent: a request that
	// reached a server before it went away may have been stored.
	attempts := 1
	if keyed {
		attempts = submitAttempts
	}
	return c.submit(ctx, req, attempts)
}

// submit sends req, resending it while it fails with Unavailable, up to
// attempts times in all.
func (c *Client) submit(ctx context.Context, req *plutov1.SubmitRequest, attempts int, opts ...grpc.CallOption) ([]*Run, error) {
	var resp *plutov1.SubmitResponse
	var err error
	for attempt := 0; ; attempt++ {
		resp, err = c.rpc.Submit(ctx, req, opts...)
		if err == nil || attempt >= attempts-1 || status.Code(err) != codes.Unavailable {
			break
		}
		if !sleepCtx(ctx, min(100*time.Millisecond<<attempt, time.Second)) {
			break
		}
	}
	if err != nil {
		return nil, decodeError(ctx, err)
	}
	if n := len(req.GetRuns()); len(resp.GetRuns()) != n {
		return nil, fmt.Errorf("pluto: server returned %d runs for %d specs", len(resp.GetRuns()), n)
	}
	existing := resp.GetExisting()
	runs := make([]*Run, len(resp.GetRuns()))
	for i, p := range resp.GetRuns() {
		runs[i] = runFromProto(p)
		runs[i].Existing = i < len(existing) && existing[i]
	}
	return runs, nil
}

// submitAttempts bounds the resends of a keyed submission.
const submitAttempts = 5

// sleepCtx waits for d; it reports false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Get returns a run.
func (c *Client) Get(ctx context.Context, id string) (*Run, error) {
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	p, err := c.rpc.Get(ctx, &plutov1.GetRequest{Id: id})
	if err != nil {
		return nil, decodeError(ctx, err)
	}
	return runFromProto(p), nil
}

// ListOptions filters a listing. Zero values match everything.
type ListOptions struct {
	Status   []Status // any of these statuses
	Group    string
	Job      string
	Type     string // handler type
	WorkerID string // the worker that ran (or runs) the current attempt
	// CreatedAfter/Before and FinishedAfter/Before bound the times
	// (after: inclusive, before: exclusive); zero means unbounded.
	CreatedAfter, CreatedBefore   time.Time
	FinishedAfter, FinishedBefore time.Time
	Oldest                        bool   // oldest first instead of newest first
	Error                         string // a substring of the error; without Status, failed and timed-out runs only
	Limit                         int    // page size; the server's default is 100, its maximum 1000
	Cursor                        string // RunPage.NextCursor of the previous page
}

// RunPage is one page of runs, newest first.
type RunPage struct {
	Runs []*Run
	// NextCursor fetches the next page (ListOptions.Cursor); "" on the last.
	NextCursor string
}

// List returns one page of runs, newest first. Pass the page's NextCursor
// as opts.Cursor for the next page, or use ListAll.
func (c *Client) List(ctx context.Context, opts ListOptions) (*RunPage, error) {
	req := &plutov1.ListRequest{
		Group:  opts.Group,
		Job:    opts.Job,
		Limit:  int32(opts.Limit),
		Cursor: opts.Cursor,
		Type:   opts.Type, Worker: opts.WorkerID, Error: opts.Error,
		CreatedAfterUnixMs: unixMs(opts.CreatedAfter), CreatedBeforeUnixMs: unixMs(opts.CreatedBefore),
		FinishedAfterUnixMs: unixMs(opts.FinishedAfter), FinishedBeforeUnixMs: unixMs(opts.FinishedBefore),
	}
	if opts.Oldest {
		req.Order = "asc"
	}
	for _, s := range opts.Status {
		req.Status = append(req.Status, string(s))
	}
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	resp, err := c.rpc.List(ctx, req)
	if err != nil {
		return nil, decodeError(ctx, err)
	}
	page := &RunPage{Runs: make([]*Run, len(resp.GetRuns())), NextCursor: resp.GetNextCursor()}
	for i, p := range resp.GetRuns() {
		page.Runs[i] = runFromProto(p)
	}
	return page, nil
}

// ListAll iterates over every run matching opts, newest first, fetching
// pages of opts.Limit as it goes. It stops at the first error, which it
// yields with a nil run.
//
//	for run, err := range c.ListAll(ctx, client.ListOptions{Status: []client.Status{client.StatusFailed}}) {
//		if err != nil { return err }
//		…
//	}
func (c *Client) ListAll(ctx context.Context, opts ListOptions) iter.Seq2[*Run, error] {
	return func(yield func(*Run, error) bool) {
		for {
			page, err := c.List(ctx, opts)
			if err != nil {
				yield(nil, err)
				return
			}
			for _, r := range page.Runs {
				if !yield(r, nil) {
					return
				}
			}
			if page.NextCursor == "" || page.NextCursor == opts.Cursor {
				return
			}
			opts.Cursor = page.NextCursor
		}
	}
}

// Wait blocks until the run is terminal (succeeded, failed, cancelled,
// timed_out or skipped) and returns it; a run that failed is not an error
// of Wait — check Run.Succeeded. Wait polls the server with long polls, so
// it survives a server restart or a failover between polls.
//
// If ctx ends first, Wait returns the run as last seen (nil if never) and
// ctx.Err().
func (c *Client) Wait(ctx context.Context, id string) (*Run, error) {
	var last *Run
	for {
		poll := c.poll
		if dl, ok := ctx.Deadline(); ok {
			// Ask the server to answer a little before our deadline so that
			// the caller gets the run as it is now rather than nothing.
			left := time.Until(dl)
			if m := left - left/10 - 5*time.Millisecond; m < poll {
				poll = m
			}
		}
		if poll < time.Millisecond {
			poll = time.Millisecond
		}
		start := time.Now()
		p, err := c.rpc.Wait(ctx, &plutov1.WaitRequest{Id: id, TimeoutMs: poll.Milliseconds()})
		if err != nil {
			return last, decodeError(ctx, err)
		}
		last = runFromProto(p)
		if last.Terminal() {
			return last, nil
		}
		if err := ctx.Err(); err != nil {
			return last, err
		}
		// A server that answers a long poll at once with a run that is not
		// done would make this loop spin; pace it.
		if time.Since(start) < poll/2 && !sleepCtx(ctx, min(poll/2, 100*time.Millisecond)) {
			return last, ctx.Err()
		}
	}
}

// Cancel cancels a run wherever it is (pending, queued, on a worker — the
// worker's handler context is cancelled). Cancelling a finished run returns
// it unchanged. reason is recorded as the run's error.
func (c *Client) Cancel(ctx context.Context, id, reason string) (*Run, error) {
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	p, err := c.rpc.Cancel(ctx, &plutov1.CancelRequest{Id: id, Reason: reason})
	if err != nil {
		return nil, decodeError(ctx, err)
	}
	return runFromProto(p), nil
}

// Retry puts a finished run that did not succeed back in its queue with a
// fresh attempt budget. A run that is not finished, or that succeeded,
// gives ErrConflict.
func (c *Client) Retry(ctx context.Context, id string) (*Run, error) {
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	p, err := c.rpc.Retry(ctx, &plutov1.RetryRequest{Id: id})
	if err != nil {
		return nil, decodeError(ctx, err)
	}
	return runFromProto(p), nil
}
