package console

import (
	"strings"
	"testing"
	"time"
)

func TestLoginLinkWorksOnce(t *testing.T) {
	c := &Console{}
	p, err := c.LoginLink("plt_secret")
	if err != nil {
		t.Fatal(err)
	}
	code := strings.TrimPrefix(p, "/login?code=")
	if code == p || strings.Contains(p, "plt_secret") {
		t.Fatalf("link %q", p)
	}
	if got := c.links.redeem(code); got != "plt_secret" {
		t.Fatalf("first use: %q", got)
	}
	if got := c.links.redeem(code); got != "" {
		t.Fatalf("second use gave %q", got)
	}
	p, _ = c.LoginLink("plt_other")
	code = strings.TrimPrefix(p, "/login?code=")
	c.links.mu.Lock()
	c.links.codes[code] = loginLink{secret: "plt_other", expires: time.Now().Add(-time.Second)}
	c.links.mu.Unlock()
	if got := c.links.redeem(code); got != "" {
		t.Fatalf("an expired link gave %q", got)
	}
	for range 3 * maxLoginLinks {
		if _, err := c.LoginLink("x"); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(c.links.codes); n > maxLoginLinks {
		t.Fatalf("%d links kept", n)
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"":                     "/",
		"/runs?status=failed":  "/runs?status=failed",
		"//evil.example/x":     "/",
		"/\\evil.example":      "/",
		"https://evil.example": "/",
		"runs":                 "/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCSRFTokenDependsOnTheSecret(t *testing.T) {
	a, b := csrfFor("plt_a"), csrfFor("plt_b")
	if a == b || len(a) != 32 || a == "" {
		t.Fatalf("csrf tokens %q %q", a, b)
	}
	if csrfFor("plt_a") != a {
		t.Fatal("not stable")
	}
}
