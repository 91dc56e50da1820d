package config

import (
	"strings"
	"testing"
)

func TestConfigTLS(t *testing.T) {
	file := tempConfig(t, "tls-cert: /c.pem\ntls-key: /k.pem\ngrpc-tls-cert: /g.pem\ngrpc-tls-key: /gk.pem\ntls-client-ca: /ca.pem\n")
	l, err := Load(Sources{File: file, Flags: flags(t, "--tls-peer-ca", "/peers.pem")})
	if err != nil {
		t.Fatal(err)
	}
	if c, k := l.TLS.HTTPPair(); c != "/c.pem" || k != "/k.pem" {
		t.Fatalf("HTTP pair %s %s", c, k)
	}
	if c, k := l.TLS.GRPCPair(); c != "/g.pem" || k != "/gk.pem" {
		t.Fatalf("gRPC pair %s %s", c, k)
	}
	if l.TLS.ClientCA != "/ca.pem" || l.TLS.PeerCA != "/peers.pem" {
		t.Fatalf("CAs %+v", l.TLS)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-cert", "/c.pem"}, "tls-key: required with tls-cert"},
		{[]string{"--http-tls-key", "/k.pem"}, "http-tls-cert: required with http-tls-key"},
		{[]string{"--tls-client-ca", "/ca.pem"}, "tls-client-ca: needs TLS on the gRPC port"},
		{[]string{"--http-tls-cert", "/c.pem", "--http-tls-key", "/k.pem", "--tls-client-ca", "/ca.pem"}, "needs TLS on the gRPC port"},
		{[]string{"--grpc-tls-cert", "/c.pem", "--grpc-tls-key", "/k.pem", "--tls-peer-ca", "/ca.pem"}, "tls-peer-ca: needs TLS on the HTTP port"},
	} {
		_, err := Load(Sources{Flags: flags(t, tc.args...)})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
}
