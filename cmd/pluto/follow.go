package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/spf13/cobra"
)

// Following a run's log: GET /runs/{id}/logs?follow=1 as Server-Sent
// Events. Each line comes with its seq as the event id; the server ends
// the stream with an "end" event once the run is terminal and every line
// was sent. A stream that breaks before that is resumed with Last-Event-ID
// (the last seq printed), so no line is lost or printed twice; after
// followRetries breaks in a row without a line between them the command
// gives up.

const (
	followRetries  = 5
	followBackoff  = 250 * time.Millisecond
	followMaxDelay = 5 * time.Second
)

// followLogs prints the run's lines from after on until the server ends
// the stream.
func (a *app) followLogs(cmd *cobra.Command, c *apiClient, co *clientOpts, id string, after int64) error {
	ctx := cmd.Context()
	fails := 0
	for {
		before := after
		ended, err := a.followOnce(ctx, c, co, id, &after)
		if ended {
			a.noteDropped(ctx, c, id)
			return nil
		}
		if ctx.Err() != nil {
			return nil // interrupted by the user
		}
		var ae *apiError
		if errors.As(err, &ae) && !transient(err) {
			return err // the server's answer: not found, forbidden, …
		}
		if after > before {
			fails = 0
		}
		if fails++; fails > followRetries {
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("log stream from %s broke %d times: %w", c.base, fails, err)
		}
		d := min(followBackoff<<(fails-1), followMaxDelay)
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return nil
		}
	}
}

// followOnce reads one follow stream, advancing *after past each line
// printed; ended is true when the server ended it normally.
func (a *app) followOnce(ctx context.Context, c *apiClient, co *clientOpts, id string, after *int64) (ended bool, err error) {
	q := url.Values{"follow": {"1"}, "after": {strconv.FormatInt(*after, 10)}}
	req, err := c.newRequest(ctx, http.MethodGet, "/runs/"+url.PathEscape(id)+"/logs", q, nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Accept", "text/event-stream, application/x-ndjson;q=0.5")
	if *after > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(*after, 10))
	}
	res, err := c.send(req)
	if err != nil {
		return false, err
	}
	defer res.Body.Close()
	rd := bufio.NewReaderSize(res.Body, 64<<10)
	if mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type")); mt != "text/event-stream" {
		return a.followNDJSON(co, rd, after)
	}
	var event, evID, data []byte
	for {
		line, err := rd.ReadBytes('\n')
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case err != nil:
			return false, err // the stream broke before its end event
		case len(line) == 0: // an event is complete
			if ended, err := a.followEvent(co, string(event), evID, data, after); ended || err != nil {
				return ended, err
			}
			event, evID, data = nil, nil, nil
		case line[0] == ':': // a heartbeat
		default:
			k, v, _ := bytes.Cut(line, []byte(":"))
			v = bytes.TrimPrefix(v, []byte(" "))
			switch string(k) {
			case "event":
				event = v
			case "id":
				evID = v
			case "data":
				data = append(data, v...)
			}
		}
	}
}

// followEvent prints one event's line, or reports the stream's end or
// error.
func (a *app) followEvent(co *clientOpts, event string, id, data []byte, after *int64) (ended bool, err error) {
	switch event {
	case "end":
		return true, nil
	case "error":
		var env struct {
			Error *apiError `json:"error"`
		}
		if json.Unmarshal(data, &env) == nil && env.Error != nil {
			return false, env.Error
		}
		return false, fmt.Errorf("log stream error: %s", data)
	case "", "message":
	default:
		return false, nil // an event this client does not know
	}
	if len(data) == 0 {
		return false, nil
	}
	if err := a.printFollowed(co, data); err != nil {
		return false, err
	}
	if n, err := strconv.ParseInt(string(id), 10, 64); err == nil && n > *after {
		*after = n
	}
	return false, nil
}

// followNDJSON reads a server's NDJSON follow (one that does not speak
// SSE): it ends at EOF, and an error arrives as an {"error": …} line.
func (a *app) followNDJSON(co *clientOpts, rd *bufio.Reader, after *int64) (bool, error) {
	for {
		line, err := rd.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			var env struct {
				Error *apiError `json:"error"`
				Seq   int64     `json:"seq"`
			}
			if json.Unmarshal(line, &env) == nil && env.Error != nil {
				return false, env.Error
			}
			if perr := a.printFollowed(co, bytes.TrimRight(line, "\n")); perr != nil {
				return false, perr
			}
			*after = max(*after, env.Seq)
		}
		if err == io.EOF {
			return true, nil
		}
		if err != nil {
			return false, err
		}
	}
}

// printFollowed prints one log line's JSON as -o asks.
func (a *app) printFollowed(co *clientOpts, data []byte) error {
	if co.json() {
		_, _ = a.stdout.Write(data)
		_, _ = io.WriteString(a.stdout, "\n")
		return nil
	}
	l, err := decode[apiLog](data)
	if err != nil {
		return err
	}
	printLogLine(a.stdout, l)
	return nil
}

// noteDropped says on stderr how many of the run's lines its log cap
// dropped (nothing when none, or when the run cannot be read).
func (a *app) noteDropped(ctx context.Context, c *apiClient, id string) {
	_, run, err := c.getRun(ctx, id)
	if err == nil && run.LogLinesDropped > 0 {
		fmt.Fprintf(a.stderr, "pluto: %d log lines of %s were dropped past the log cap\n", run.LogLinesDropped, id)
	}
}
