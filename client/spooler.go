package client

import (
	"context"
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	plutov1 "github.com/pluto-sched/pluto/internal/gen/pluto/v1"
)

// Defaults of the spool's sender.
const (
	// DefaultSpoolBackoff and DefaultSpoolMaxBackoff bound the wait after
	// a failed delivery (see WithSpoolBackoff).
	DefaultSpoolBackoff    = 200 * time.Millisecond
	DefaultSpoolMaxBackoff = 30 * time.Second

	spoolBatchSpecs = 500     // specs per delivery
	spoolBatchBytes = 1 << 20 // encoded spec bytes per delivery (at least one spec)
	spoolSendWait   = 30 * time.Second
)

type spoolOptions struct {
	dir                    string
	onReject               func(RunSpec, error)
	backoffMin, backoffMax time.Duration
}

// WithSpool makes the client keep submissions that no server takes in a
// spool: files in dir (created if needed, mode 0700), which a background
// sender delivers when a server answers again. One client (in one
// process) uses a spool directory at a time: Dial fails if another holds
// it. The sender starts with Dial — at once delivering what an earlier
// process left in the spool — and stops with Close.
//
// With a spool, Submit and SubmitBatch:
//
//   - give each spec without a Key a generated one ("auto-…"), so that no
//     resend, by the client or its sender, can create a second run;
//   - make one request. If it fails because no server answered or the
//     answer did not come — ErrUnavailable, a deadline (the caller's, or
//     WithTimeout's), or an internal server error — the specs are written
//     to the spool and fsynced, and a *SpooledError (errors.Is(err,
//     ErrSpooled)) with their keys is returned. A spec with no Type or
//     Group is refused (*FieldError) rather than spooled;
//   - return every other failure as a client without a spool would: a
//     rejection (ErrInvalid, ErrPayloadTooLarge, ErrUnauthenticated,
//     ErrPermissionDenied, …) is never spooled, and neither is a
//     submission whose context the caller cancelled (it may or may not
//     have been stored: give specs keys of your own to resubmit safely).
//
// A spooled spec's Delay is turned into a RunAt (the time of the Submit
// plus Delay), so a late delivery does not postpone it further.
//
// The sender delivers the spooled specs in the order they were spooled,
// in batches (SubmitBatch), and takes them off the spool only once a
// server has acknowledged them. After a failure it waits (exponential
// back-off with jitter, see WithSpoolBackoff; gRPC's reconnects follow the
// same bounds) and tries again, for ever — each attempt waiting up to 30 s
// (or WithTimeout) for a server to be ready:
// a server that is away, an expired token (ErrUnauthenticated) or a
// server error does not make the spool give up. A spec the server
// rejects for good — ErrInvalid or ErrPayloadTooLarge — is not retried:
// it moves to the dead-letter file dir/dead.jsonl (one JSON object per
// line: "time", "error" and "run", the spec as a POST /api/v1/runs body)
// and is reported to the WithSpoolErrorHandler callback. A batch that is
// rejected is sent again one spec at a time, so that only the culprit is
// dead-lettered (a spooled SubmitBatch is thus no longer all-or-nothing).
// A submission that reaches a server directly may overtake older specs
// still in the spool.
//
// Guarantees. Every spec for which Submit returned ErrSpooled is delivered
// at least once — resent until a server acknowledges it — or dead-lettered
// and reported; never dropped, across crashes and restarts of the client
// process as long as dir survives. Because every spec carries an
// idempotency key, a resend after an ambiguous failure (the server
// committed, the reply was lost) returns the run the first attempt made:
// each spec creates at most one run — as long as the server still holds
// that run. A spec whose Submit did not return (the process died while
// writing it) may be lost; a crash after a delivery or a dead letter and
// before the spool recorded it makes the sender resend (harmless) or
// report it again.
//
// Spool files are append-only logs of checksummed records: a record torn
// by a crash is ignored and cut off; the log is compacted through a
// temporary file renamed over it. Locking uses flock, so a spool needs a
// Unix system.
func WithSpool(dir string) Option {
	return func(o *options) { o.spool.dir = dir }
}

// WithSpoolErrorHandler sets fn to be called, from the spool's sender,
// for each spooled spec that a server rejected for good (err matches
// ErrInvalid or ErrPayloadTooLarge), after the spec was written to the
// dead-letter file and before it leaves the spool (so after a crash it
// may be reported twice). The spec's Payload is a json.RawMessage. fn must
// not block for long, and must not call Close. Without WithSpool it does
// nothing.
func WithSpoolErrorHandler(fn func(spec RunSpec, err error)) Option {
	return func(o *options) { o.spool.onReject = fn }
}

// WithSpoolBackoff sets how long the spool's sender waits after a failed
// delivery: initial the first time, doubling with each further failure up
// to maxWait, each wait drawn at random from its upper half. The defaults
// are DefaultSpoolBackoff and DefaultSpoolMaxBackoff.
func WithSpoolBackoff(initial, maxWait time.Duration) Option {
	return func(o *options) { o.spool.backoffMin, o.spool.backoffMax = initial, maxWait }
}

func (o spoolOptions) withDefaults() spoolOptions {
	if o.backoffMin <= 0 {
		o.backoffMin = DefaultSpoolBackoff
	}
	if o.backoffMax <= 0 {
		o.backoffMax = DefaultSpoolMaxBackoff
	}
	o.backoffMax = max(o.backoffMax, o.backoffMin)
	return o
}

// connectParams makes gRPC reconnect to an absent server at least as often
// as the sender tries (its default reconnect back-off grows to 2 minutes),
// so that the sender's delivery, which waits for a connection, goes out
// soon after a server is back.
func (o spoolOptions) connectParams() grpc.DialOption {
	o = o.withDefaults()
	bc := backoff.DefaultConfig
	bc.BaseDelay = min(bc.BaseDelay, o.backoffMin)
	bc.MaxDelay = min(bc.MaxDelay, o.backoffMax)
	return grpc.WithConnectParams(grpc.ConnectParams{Backoff: bc, MinConnectTimeout: 20 * time.Second})
}

// spooler is the spool of a client and its sender.
type spooler struct {
	c                      *Client
	log                    *spool
	onReject               func(RunSpec, error)
	backoffMin, backoffMax time.Duration

	notify chan struct{} // specs were spooled
	kick   chan struct{} // FlushSpool: try now
	cancel context.CancelFunc
	done   chan struct{} // closed when the sender has stopped

	closeOnce sync.Once
	closeErr  error

	mu      sync.Mutex
	lastErr error // of the last delivery; nil after a success
}

func startSpooler(c *Client, o spoolOptions) (*spooler, error) {
	log, err := openSpool(o.dir)
	if err != nil {
		return nil, err
	}
	o = o.withDefaults()
	sp := &spooler{
		c: c, log: log, onReject: o.onReject, backoffMin: o.backoffMin, backoffMax: o.backoffMax,
		notify: make(chan struct{}, 1), kick: make(chan struct{}, 1), done: make(chan struct{}),
	}
	ctx, cancel := context.WithCancel(context.Background())
	sp.cancel = cancel
	go sp.run(ctx)
	return sp, nil
}

func (sp *spooler) close() error {
	sp.closeOnce.Do(func() {
		sp.cancel()
		<-sp.done
		sp.closeErr = sp.log.close()
	})
	return sp.closeErr
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// newKey returns a fresh idempotency key.
func newKey() string { return "auto-" + crand.Text() }

// submit is SubmitBatch on a client with a spool.
func (sp *spooler) submit(ctx context.Context, specs []RunSpec) ([]*Run, error) {
	start := time.Now()
	n := len(specs)
	req := &plutov1.SubmitRequest{Runs: make([]*plutov1.RunSpec, n)}
	keys := make([]string, n)
	for i := range specs {
		s := specs[i]
		if s.Key == "" {
			s.Key = newKey()
		}
		p, err := s.toProto(i, n)
		if err != nil {
			return nil, err
		}
		req.Runs[i], keys[i] = p, s.Key
	}
	cctx, cancel := sp.c.callCtx(ctx)
	runs, err := sp.c.submit(cctx, req, 1)
	cancel()
	if err == nil || !spoolable(ctx, err) {
		return runs, err
	}
	datas := make([][]byte, n)
	for i, p := range req.Runs {
		if ferr := checkSpec(p, i, n); ferr != nil {
			return nil, ferr
		}
		if p.DelayMs > 0 && p.RunAtUnixMs == 0 {
			p.RunAtUnixMs, p.DelayMs = start.UnixMilli()+p.DelayMs, 0
		}
		b, merr := proto.Marshal(p)
		if merr != nil {
			return nil, fmt.Errorf("pluto: spool: encode run %d: %w", i, merr)
		}
		datas[i] = b
	}
	if serr := sp.log.append(datas); serr != nil {
		return nil, fmt.Errorf("%w (and the spool could not keep the submission: %w)", err, serr)
	}
	signal(sp.notify)
	return nil, &SpooledError{Keys: keys, Cause: err}
}

// spoolable reports whether a failed submission should be spooled: no
// server answered, or its answer never came. ctx is the caller's.
func spoolable(ctx context.Context, err error) bool {
	if ctx.Err() == context.Canceled {
		return false // the caller gave up
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		return false
	}
	var e *Error
	if errors.As(err, &e) {
		switch e.Code {
		case codes.Unavailable, codes.DeadlineExceeded, codes.Internal, codes.Unknown,
			codes.Aborted, codes.Canceled, codes.DataLoss:
			return true
		}
		return false
	}
	// A deadline, or an answer that made no sense: the key makes a resend
	// safe.
	return true
}

// checkSpec refuses, before spooling, a spec no server would take.
func checkSpec(p *plutov1.RunSpec, i, n int) error {
	field := ""
	switch {
	case p.GetType() == "":
		field = "type"
	case p.GetGroup() == "":
		field = "group"
	default:
		return nil
	}
	msg := "is required"
	if n > 1 {
		msg = fmt.Sprintf("run %d: %s", i, msg)
	}
	return &FieldError{Field: field, Message: msg}
}

// run is the sender: it delivers the head of the spool until ctx ends.
func (sp *spooler) run(ctx context.Context) {
	defer close(sp.done)
	failures := 0
	for {
		batch := sp.log.head(spoolBatchSpecs, spoolBatchBytes)
		if len(batch) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-sp.notify:
			case <-sp.kick:
			}
			continue
		}
		err := sp.deliver(ctx, batch)
		if ctx.Err() != nil {
			return
		}
		sp.mu.Lock()
		sp.lastErr = err
		sp.mu.Unlock()
		if err == nil {
			failures = 0
			continue
		}
		t := time.NewTimer(retryWait(sp.backoffMin, sp.backoffMax, failures))
		failures++
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-sp.kick:
			t.Stop()
		}
	}
}

// retryWait is the wait after the n+1-th failure in a row: initial·2ⁿ capped
// at maxWait, drawn from its upper half.
func retryWait(initial, maxWait time.Duration, n int) time.Duration {
	d := maxWait
	if n < 32 && initial<<n < maxWait && initial<<n > 0 {
		d = initial << n
	}
	return d/2 + rand.N(d/2+1)
}

// deliver sends batch, the head of the spool, and takes what the server
// acknowledged or rejected for good off the spool. It returns an error
// when some of batch must be tried again.
func (sp *spooler) deliver(ctx context.Context, batch []spoolEntry) error {
	specs := make([]*plutov1.RunSpec, len(batch))
	bad := make([]error, len(batch)) // records that do not decode
	decoded := true
	for i, e := range batch {
		specs[i] = new(plutov1.RunSpec)
		if err := proto.Unmarshal(e.data, specs[i]); err != nil {
			bad[i], decoded = err, false
		}
	}
	if decoded {
		err := sp.send(ctx, specs)
		if err == nil {
			return sp.log.remove(len(batch), batch[len(batch)-1])
		}
		if !rejected(err) {
			return err
		}
		if len(batch) == 1 {
			return sp.reject(batch[0], specs[0], err)
		}
	}
	// Find the culprit: one spec at a time.
	for i, e := range batch {
		if bad[i] != nil {
			if err := sp.reject(e, nil, fmt.Errorf("%w: spooled record: %w", ErrInvalid, bad[i])); err != nil {
				return err
			}
			continue
		}
		err := sp.send(ctx, specs[i:i+1])
		switch {
		case err == nil:
			err = sp.log.remove(1, e)
		case rejected(err):
			err = sp.reject(e, specs[i], err)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// send makes one submit request, waiting for a server to be ready.
func (sp *spooler) send(ctx context.Context, specs []*plutov1.RunSpec) error {
	wait := spoolSendWait
	if sp.c.timeout > 0 {
		wait = sp.c.timeout
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	_, err := sp.c.submit(ctx, &plutov1.SubmitRequest{Runs: specs}, 1, grpc.WaitForReady(true))
	return err
}

// rejected reports whether a server refused a submission for good.
func rejected(err error) bool {
	return errors.Is(err, ErrInvalid) || errors.Is(err, ErrPayloadTooLarge)
}

// reject dead-letters e (p is nil when it could not be decoded), reports it
// and takes it off the spool.
func (sp *spooler) reject(e spoolEntry, p *plutov1.RunSpec, cause error) error {
	var spec RunSpec
	if p != nil {
		spec = specFromProto(p)
	}
	specp := &spec
	if p == nil {
		specp = nil
	}
	if err := sp.log.writeDead(e, specp, cause); err != nil {
		return err
	}
	if sp.onReject != nil {
		sp.onReject(spec, cause)
	}
	return sp.log.remove(1, e)
}

// specFromProto is the RunSpec a spooled spec came from.
func specFromProto(p *plutov1.RunSpec) RunSpec {
	s := RunSpec{
		Type: p.GetType(), Group: p.GetGroup(), Priority: int(p.GetPriority()),
		Delay: time.Duration(p.GetDelayMs()) * time.Millisecond, RunAt: fromUnixMs(p.GetRunAtUnixMs()),
		Timeout: time.Duration(p.GetTimeoutMs()) * time.Millisecond, Retries: int(p.GetRetries()),
		Key: p.GetKey(), Routing: p.GetRouting(), RoutingKey: p.GetRoutingKey(), Job: p.GetJob(),
		CallbackURL: p.GetCallbackUrl(),
	}
	if len(p.GetPayload()) > 0 {
		s.Payload = json.RawMessage(p.GetPayload())
	}
	return s
}

// SpoolLen returns how many specs wait in the client's spool (0 without
// WithSpool).
func (c *Client) SpoolLen() int {
	if c.spool == nil {
		return 0
	}
	return c.spool.log.len()
}

// FlushSpool asks the spool's sender to try now, cutting its back-off
// short, and waits until every spec
// that was in the spool when it was called has left it (delivered, or
// dead-lettered and reported). If ctx ends first it returns an error
// saying how many specs are left, wrapping ctx's error and the last
// delivery error. Without WithSpool it returns nil at once.
func (c *Client) FlushSpool(ctx context.Context) error {
	sp := c.spool
	if sp == nil {
		return nil
	}
	target := sp.log.tailSeq()
	signal(sp.kick)
	for {
		changed, head, n := sp.log.progress()
		if n == 0 || head > target {
			return nil
		}
		select {
		case <-changed:
		case <-sp.done:
			return fmt.Errorf("pluto: flush spool: %d specs left: %w", n, errSpoolClosed)
		case <-ctx.Done():
			sp.mu.Lock()
			last := sp.lastErr
			sp.mu.Unlock()
			if last != nil {
				return fmt.Errorf("pluto: flush spool: %d specs left (last delivery: %w): %w", n, last, ctx.Err())
			}
			return fmt.Errorf("pluto: flush spool: %d specs left: %w", n, ctx.Err())
		}
	}
}
