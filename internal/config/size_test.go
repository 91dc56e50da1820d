package config

import (
	"testing"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"1048576": 1 << 20, "1MiB": 1 << 20, "1 MiB": 1 << 20, "512KiB": 512 << 10, "2m": 2 << 20, "3G": 3 << 30, "7b": 7,
	} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "1.5MiB", "-1", "1 parsec", "99999999999999999999", "9999999999999GiB"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		}
	}
	for n, want := range map[int64]string{1 << 20: "1MiB", 1536: "1536", 3 << 10: "3KiB", 100: "100"} {
		if got := formatSize(n); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", n, got, want)
		}
	}
}

// The log caps come from flags and the file, and a size takes a unit.
func TestLogCapSettings(t *testing.T) {
	l, err := Load(Sources{Flags: flags(t, "--log-max-lines", "500", "--log-max-bytes", "64KiB")})
	if err != nil || l.Server.LogMaxLines != 500 || l.Server.LogMaxBytes != 64<<10 {
		t.Fatalf("flags: %+v, %v", l.Server, err)
	}
	if _, err := Load(Sources{Flags: flags(t, "--log-max-bytes", "lots")}); err == nil {
		t.Error("--log-max-bytes lots was accepted")
	}
	if _, err := Load(Sources{Flags: flags(t, "--log-max-lines", "0")}); err == nil {
		t.Error("--log-max-lines 0 was accepted")
	}
	d := Defaults()
	if d.LogMaxLines != 10000 || d.LogMaxBytes != 1<<20 {
		t.Errorf("defaults %d lines, %d bytes", d.LogMaxLines, d.LogMaxBytes)
	}
	if k, ok := key("log-max-bytes"); !ok || !k.Live {
		t.Error("log-max-bytes is not a live key")
	}
}
