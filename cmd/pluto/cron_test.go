package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestCronNext(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"quartz", []string{"cron", "next", "0 0/1 * * * ?", "--tz", "UTC", "--from", "2026-01-01T10:00:30Z", "-n", "3"},
			"2026-01-01T10:01:00Z\n2026-01-01T10:02:00Z\n2026-01-01T10:03:00Z\n"},
		{"unquoted fields are joined", []string{"cron", "next", "0", "15", "10", "?", "*", "6L", "2027", "--tz", "UTC", "--from", "2026-03-07T12:00:00Z", "-n", "2"},
			"2027-01-29T10:15:00Z\n2027-02-26T10:15:00Z\n"},
		{"standard, Unix day numbering", []string{"cron", "next", "0 12 * * 0", "--tz", "UTC", "--from", "2026-01-01T00:00:00Z", "-n", "2"},
			"2026-01-04T12:00:00Z\n2026-01-11T12:00:00Z\n"},
		{"default count is 5", []string{"cron", "next", "@daily", "--tz", "UTC", "--from", "2026-01-01T00:00:00Z"},
			"2026-01-02T00:00:00Z\n2026-01-03T00:00:00Z\n2026-01-04T00:00:00Z\n2026-01-05T00:00:00Z\n2026-01-06T00:00:00Z\n"},
		{"printed in the zone, DST gap", []string{"cron", "next", "30 2 * * *", "--tz", "America/New_York", "--from", "2026-03-07T12:00:00-05:00", "-n", "2"},
			"2026-03-08T03:00:00-04:00\n2026-03-09T02:30:00-04:00\n"},
		{"DST overlap fires once", []string{"cron", "next", "0 30 1 * * ?", "--tz", "America/New_York", "--from", "2026-10-31T12:00:00-04:00", "-n", "2"},
			"2026-11-01T01:30:00-04:00\n2026-11-02T01:30:00-05:00\n"},
		{"--from without offset is in --tz", []string{"cron", "next", "@hourly", "--tz", "Europe/Berlin", "--from", "2026-10-25T01:30:00", "-n", "3"},
			"2026-10-25T02:00:00+02:00\n2026-10-25T02:00:00+01:00\n2026-10-25T03:00:00+01:00\n"},
		{"--from as a date", []string{"cron", "next", "@daily", "--tz", "Asia/Tokyo", "--from", "2026-05-01", "-n", "1"},
			"2026-05-02T00:00:00+09:00\n"},
		{"@every is epoch-aligned", []string{"cron", "next", "@every", "90m", "--tz", "UTC", "--from", "2026-01-01T12:00:00Z", "-n", "2"},
			"2026-01-01T13:30:00Z\n2026-01-01T15:00:00Z\n"},
		{"fewer than -n", []string{"cron", "next", "0 0 0 1 1 ? 2030-2031", "--tz", "UTC", "--from", "2026-01-01T00:00:00Z"},
			"2030-01-01T00:00:00Z\n2031-01-01T00:00:00Z\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := runCLI(t, nil, c.args...)
			if r.code != 0 || r.stdout != c.want {
				t.Errorf("exit %d\nstdout:\n%s\nwant:\n%s\nstderr: %s", r.code, r.stdout, c.want, r.stderr)
			}
		})
	}
}

func TestCronNextJSON(t *testing.T) {
	r := runCLI(t, nil, "cron", "next", "0 0 12 1W * ?", "--tz", "UTC", "--from", "2026-01-01T12:00:00Z", "-n", "3", "-o", "json")
	var got []string
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &got) != nil {
		t.Fatalf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	want := []string{"2026-02-02T12:00:00Z", "2026-03-02T12:00:00Z", "2026-04-01T12:00:00Z"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("got %v, want %v", got, want)
	}

	// Never fires: an empty array (not null), a note on stderr, success.
	r = runCLI(t, nil, "cron", "next", "0 0 0 30 2 ?", "--tz", "UTC", "--from", "2026-01-01T00:00:00Z", "-o", "json")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "[]" || !strings.Contains(r.stderr, "no fire time after 2026-01-01T00:00:00Z") {
		t.Errorf("never: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, nil, "cron", "next", "0 0 0 30 2 ?", "--tz", "UTC")
	if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "no fire time") {
		t.Errorf("never, table: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestCronNextDefaults(t *testing.T) {
	// Default --from is now, default --tz the local zone.
	before := time.Now()
	r := runCLI(t, nil, "cron", "next", "* * * * * ?")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 5 {
		t.Fatalf("want 5 lines, got %q", r.stdout)
	}
	prev := before
	for _, l := range lines {
		tt, err := time.Parse(time.RFC3339, l)
		if err != nil || !tt.After(prev.Truncate(time.Second)) || tt.Sub(prev) > 2*time.Second {
			t.Fatalf("line %q after %v: %v", l, prev, err)
		}
		if _, off := tt.Zone(); off != offsetIn(time.Local, tt) {
			t.Errorf("line %q is not in the local zone", l)
		}
		prev = tt
	}
	r = runCLI(t, nil, "cron", "next", "@daily", "--from", "2026-07-01T12:00:00Z", "-n", "1")
	want := time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC).In(time.Local)
	want = time.Date(want.Year(), want.Month(), want.Day()+1, 0, 0, 0, 0, time.Local)
	if r.code != 0 || strings.TrimSpace(r.stdout) != want.Format(time.RFC3339) {
		t.Errorf("@daily in Local: exit %d stdout %q want %s", r.code, r.stdout, want.Format(time.RFC3339))
	}

	r = runCLI(t, nil, "cron", "next", "@hourly", "-n", "1000", "--tz", "UTC")
	if n := strings.Count(r.stdout, "\n"); r.code != 0 || n != 1000 {
		t.Errorf("-n 1000: exit %d, %d lines", r.code, n)
	}
}

func offsetIn(loc *time.Location, t time.Time) int {
	_, off := t.In(loc).Zone()
	return off
}

func TestCronUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"cron", "next", "0 0 25 * * ?"}, `cron: field 3 (hour) "25": value out of range 0-23`},
		{[]string{"cron", "next", "0 0 0 L * MON"}, `day-of-month and day-of-week cannot both be set`},
		{[]string{"cron", "next", "0 0 * *"}, `4 fields`},
		{[]string{"cron", "next", "@every", "-5s"}, `unknown shorthand flag`}, // quote it: "@every -5s"
		{[]string{"cron", "next", "@every -5s"}, `must be positive`},
		{[]string{"cron", "next", "@daily", "--tz", "Mars/Olympus"}, `invalid --tz "Mars/Olympus"`},
		{[]string{"cron", "next", "@daily", "--from", "tomorrow"}, `invalid --from "tomorrow"`},
		{[]string{"cron", "next", "@daily", "-n", "0"}, `invalid -n 0: want 1-1000`},
		{[]string{"cron", "next", "@daily", "-n", "1001"}, `invalid -n 1001`},
		{[]string{"cron", "next", "@daily", "-n", "many"}, `invalid argument "many"`},
		{[]string{"cron", "next", "@daily", "-o", "yaml"}, `invalid --output "yaml"`},
		{[]string{"cron", "next"}, `missing EXPR`},
		{[]string{"cron", "bogus"}, `unknown command "bogus"`},
	} {
		r := runCLI(t, nil, c.args...)
		if r.code != 2 || !strings.Contains(r.stderr, c.want) || r.stdout != "" {
			t.Errorf("%v: exit %d, stderr %q (want %q), stdout %q", c.args, r.code, r.stderr, c.want, r.stdout)
		}
	}
	// The help of the group, exit 0.
	r := runCLI(t, nil, "cron")
	if r.code != 0 || !strings.Contains(r.stdout, "next") {
		t.Errorf("cron: exit %d stdout %q", r.code, r.stdout)
	}
	r = runCLI(t, nil, "cron", "next", "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "--tz") || !strings.Contains(r.stdout, "-n, --count") {
		t.Errorf("cron next --help: exit %d stdout %q", r.code, r.stdout)
	}
}
