package bearer

import (
	"context"
	"strings"
	"testing"
)

func TestToken(t *testing.T) {
	md, err := Token("plt_x").GetRequestMetadata(context.Background())
	if err != nil || len(md) != 1 || md["authorization"] != "Bearer plt_x" {
		t.Errorf("metadata %v, %v", md, err)
	}
	if Token("plt_x").RequireTransportSecurity() {
		t.Error("requires transport security: pluto dev serves loopback without TLS")
	}
}

func TestCheck(t *testing.T) {
	if err := Check("plt_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"); err != nil {
		t.Errorf("a Pluto token: %v", err)
	}
	for _, bad := range []string{"", "plt_ x", "plt_x\n", "plt_\x00", "plt_é", "plt_\x7f"} {
		err := Check(bad)
		if err == nil || (bad != "" && strings.Contains(err.Error(), bad)) {
			t.Errorf("Check(%q) = %v; want an error that does not quote the token", bad, err)
		}
	}
}
