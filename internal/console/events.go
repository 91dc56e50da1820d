package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/pluto-sched/pluto/internal/apijson"
)

// Live updates. A page that shows runs listens to /events (Server-Sent
// Events): the server sends "changed" when runs were submitted, started or
// finished, at most every eventGap, and a comment every eventPing so that
// proxies keep the stream open. The page re-reads its parts (htmx) on
// "changed": the data always come from the API, the stream only says when.

// ChangeFeed tells the console when runs changed.
type ChangeFeed interface {
	// Subscribe returns a channel that receives (coalesced) after each
	// change, and a function that ends the subscription.
	Subscribe() (<-chan struct{}, func())
}

const (
	eventGap  = 500 * time.Millisecond
	eventPing = 15 * time.Second
	// eventRecheck: how often an open stream also compares the store's
	// run counters (GET /api/v1/stats, a read of a few rows) with what it
	// saw, so that runs that change on another server of a cluster, which
	// this server's engine does not see, update the page too.
	eventRecheck = 2 * time.Second
)

func (c *Console) events(w http.ResponseWriter, r *http.Request, v *view) error {
	if c.opts.Changes == nil {
		return &APIError{Status: http.StatusNotFound, ErrorBody: errBody("no live updates on this server")}
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, "retry: 2000\n\n"); err != nil {
		return nil
	}
	_ = rc.Flush()
	ch, stop := c.opts.Changes.Subscribe()
	defer stop()
	ping := time.NewTicker(eventPing)
	defer ping.Stop()
	recheck := time.NewTicker(eventRecheck)
	defer recheck.Stop()
	var last time.Time
	seen := c.countsDigest(r, v)
	for {
		select {
		case <-r.Context().Done():
			return nil
		case <-c.stopping():
			return nil
		case <-ping.C:
			if _, err := fmt.Fprint(w, ": ping\n\n"); err != nil {
				return nil
			}
		case <-recheck.C:
			d := c.countsDigest(r, v)
			if d == seen || d == "" {
				continue
			}
			seen, last = d, time.Now()
			if _, err := fmt.Fprint(w, "event: changed\ndata: {}\n\n"); err != nil {
				return nil
			}
		case <-ch:
			if wait := eventGap - time.Since(last); wait > 0 {
				select {
				case <-time.After(wait):
				case <-r.Context().Done():
					return nil
				}
			}
			last = time.Now()
			seen = c.countsDigest(r, v)
			if _, err := fmt.Fprint(w, "event: changed\ndata: {}\n\n"); err != nil {
				return nil
			}
		}
		if err := rc.Flush(); err != nil {
			return nil
		}
	}
}

// stopping is closed when the server stops (streams end then).
func (c *Console) stopping() <-chan struct{} {
	if c.opts.Stopping == nil {
		return nil
	}
	return c.opts.Stopping
}

// countsDigest summarises the run counters the session may read ("" if
// they cannot be read): two equal digests mean no run changed status.
func (c *Console) countsDigest(r *http.Request, v *view) string {
	var st apijson.Stats
	if err := c.api.call(r.Context(), v.secret(), http.MethodGet, "/api/v1/stats", nil, nil, &st); err != nil {
		return ""
	}
	b, _ := json.Marshal(st.Totals.Counts)
	return string(b)
}
