package executor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/template"
	"time"

	"github.com/pluto-sched/pluto/internal/dur"
	"github.com/pluto-sched/pluto/internal/netguard"
	"github.com/pluto-sched/pluto/worker"
)

// Sensors wait for something outside Pluto — a job's success file, an
// endpoint answering — before their downstream jobs run (Mars' external
// markers). A sensor run checks once; if the thing is not there it pokes
// (worker.Poke): the run goes back to pending until its next check and
// holds no worker slot meanwhile. It fails, without retries, once its
// timeout passed since the run was created.
//
// The path (or URL) is a Go template over the run: {{.LogicalTime}} (a
// time.Time, the run's slot), {{.RunID}}, {{.Job}}, with the function date
// (a layout: {{.LogicalTime | date "2006-01-02"}}), formatted in the
// payload's time zone (default UTC).

// Sensor run types.
const (
	TypeFileSensor = "file-sensor"
	TypeHTTPSensor = "http-sensor"
)

// Sensor defaults.
const (
	DefaultPoke          = 30 * time.Second
	DefaultSensorTimeout = 6 * time.Hour
)

// SensorPayload is the payload of a sensor run: Path for file-sensor, URL
// for http-sensor.
type SensorPayload struct {
	Path     string `json:"path,omitempty"`
	URL      string `json:"url,omitempty"`
	Poke     string `json:"poke,omitempty"`     // between checks (default 30s)
	Timeout  string `json:"timeout,omitempty"`  // since the run was created (default 6h)
	Timezone string `json:"timezone,omitempty"` // for date (default UTC)
}

// sensorData is what the path template sees.
type sensorData struct {
	LogicalTime time.Time
	RunID       string
	Job         string
}

// sensorCheck looks once: done, or not yet.
type sensorCheck func(ctx context.Context, target string) (bool, error)

// FileSensor returns the file-sensor handler: done when the path exists on
// the worker.
func FileSensor() worker.Handler {
	return worker.HandlerFunc(func(ctx context.Context, r *worker.Run) error {
		return runSensor(ctx, r, "path", func(_ context.Context, path string) (bool, error) {
			_, err := os.Stat(path)
			switch {
			case err == nil:
				return true, nil
			case errors.Is(err, os.ErrNotExist):
				return false, nil
			}
			return false, err
		})
	})
}

// HTTPSensor returns the http-sensor handler: done when a GET of the URL
// answers 2xx. The destinations it may reach are those of the http
// handler's policy (public addresses only unless allowed).
func HTTPSensor(policy *netguard.Policy) worker.Handler {
	if policy == nil {
		policy, _ = netguard.Parse(HTTPAllowName, nil)
	}
	client := &http.Client{Transport: policy.Transport(), Timeout: DefaultHTTPTimeout}
	return worker.HandlerFunc(func(ctx context.Context, r *worker.Run) error {
		return runSensor(ctx, r, "url", func(ctx context.Context, target string) (bool, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
			if err != nil {
				return false, worker.NoRetry(fmt.Errorf("payload.url: %w", err))
			}
			if err := policy.CheckURL(req.URL); err != nil {
				return false, worker.NoRetry(fmt.Errorf("payload.url: %w", err))
			}
			resp, err := client.Do(req)
			if err != nil {
				return false, nil // not reachable yet: poke again
			}
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			return resp.StatusCode >= 200 && resp.StatusCode < 300, nil
		})
	})
}

// runSensor decodes the payload, renders the target (field names it) and
// checks it once.
func runSensor(ctx context.Context, r *worker.Run, field string, check sensorCheck) error {
	var p SensorPayload
	if err := r.Decode(&p); err != nil {
		return worker.NoRetry(err)
	}
	raw := p.Path
	if field == "url" {
		raw = p.URL
	}
	if raw == "" {
		return worker.NoRetry(fmt.Errorf("payload.%s: required", field))
	}
	poke, timeout := DefaultPoke, DefaultSensorTimeout
	for _, d := range []struct {
		name string
		s    string
		v    *time.Duration
	}{{"poke", p.Poke, &poke}, {"timeout", p.Timeout, &timeout}} {
		if d.s == "" {
			continue
		}
		v, err := dur.Parse(d.s)
		if err != nil || v <= 0 {
			return worker.NoRetry(fmt.Errorf("payload.%s: %q is not a positive duration", d.name, d.s))
		}
		*d.v = v
	}
	target, err := renderTarget(raw, p.Timezone, r)
	if err != nil {
		return worker.NoRetry(fmt.Errorf("payload.%s: %w", field, err))
	}
	ok, err := check(ctx, target)
	if err != nil {
		return err
	}
	if ok {
		r.Logger().Info("sensor: there", field, target)
		return nil
	}
	if created := r.CreatedAt(); !created.IsZero() && time.Since(created) >= timeout {
		return worker.NoRetry(fmt.Errorf("sensor: %s %s not there %s after the run was created (payload.timeout)", field, target, timeout))
	}
	r.Logger().Info("sensor: not there yet", field, target, "next", poke)
	return worker.Poke(poke)
}

// renderTarget executes raw as a template over the run.
func renderTarget(raw, zone string, r *worker.Run) (string, error) {
	if !strings.Contains(raw, "{{") {
		return raw, nil
	}
	loc := time.UTC
	if zone != "" {
		var err error
		if loc, err = time.LoadLocation(zone); err != nil {
			return "", fmt.Errorf("timezone %q: %w", zone, err)
		}
	}
	tpl, err := template.New("target").Option("missingkey=error").Funcs(template.FuncMap{
		"date": func(layout string, t time.Time) (string, error) {
			if t.IsZero() {
				return "", errors.New("the run has no logical time (trigger it with one, or run it from a schedule)")
			}
			return t.In(loc).Format(layout), nil
		},
	}).Parse(raw)
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	if err := tpl.Execute(&b, sensorData{LogicalTime: r.LogicalTime(), RunID: r.ID(), Job: r.Job()}); err != nil {
		return "", err
	}
	return b.String(), nil
}
