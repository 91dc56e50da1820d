package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

func TestPprofOnLoopbackOnly(t *testing.T) {
	cfg := Config{
		Store: "sqlite:" + filepath.Join(t.TempDir(), "pluto.db"), HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0",
		Logger: slog.New(slog.DiscardHandler), Auth: AuthConfig{BootstrapOut: io.Discard}, PprofAddr: "0.0.0.0:0",
	}
	if _, err := Start(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("pprof on every interface: %v, want refused", err)
	}
	cfg.PprofAddr = "127.0.0.1:0"
	srv, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop(context.Background())
	res, err := http.Get("http://" + srv.PprofAddr() + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(b), "goroutine") {
		t.Fatalf("pprof: %d %.200s", res.StatusCode, b)
	}
	// The API port does not serve it.
	res, err = http.Get(srv.HTTPURL() + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound && res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the API port answers /debug/pprof/ with %d", res.StatusCode)
	}
}
