package auth

import (
	"errors"
	"strings"
	"testing"
)

func TestGenerate(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		secret, hash := Generate()
		if !ValidSecret(secret) || len(secret) != SecretLen {
			t.Fatalf("Generate gave %d bytes of invalid secret", len(secret))
		}
		if hash != HashSecret(secret) || len(hash) != 64 || strings.ToLower(hash) != hash {
			t.Fatalf("hash %q is not HashSecret of the secret", hash)
		}
		if seen[secret] {
			t.Fatal("Generate repeated a secret")
		}
		seen[secret] = true
	}
	// Known answer: the hash covers the whole secret, prefix included.
	if got := HashSecret("plt_x"); got != "aa17e199104573e9042892288a3187c91fb61293e917d7cf4b75897ad24060a2" {
		t.Errorf("HashSecret(plt_x) = %s", got)
	}
}

func TestParseBearer(t *testing.T) {
	secret, _ := Generate()
	for _, h := range []string{
		"Bearer " + secret,
		"bearer " + secret,
		"BEARER   " + secret + "  ",
		"\t Bearer " + secret,
	} {
		got, err := ParseBearer(h)
		if err != nil || got != secret {
			t.Errorf("ParseBearer(%q) = %q, %v", h, got, err)
		}
	}
	for h, want := range map[string]error{
		"":                                     ErrNoToken,
		"   ":                                  ErrNoToken,
		secret:                                 ErrMalformed,
		"Basic " + secret:                      ErrMalformed,
		"Bearer":                               ErrMalformed,
		"Bearer ":                              ErrMalformed,
		"Bearer " + secret + " x":              ErrMalformed,
		"Bearer " + secret[:SecretLen-1]:       ErrMalformed,
		"Bearer " + secret + "a":               ErrMalformed,
		"Bearer " + secret[:SecretLen-1] + "-": ErrMalformed,
		"Bearer abc_" + secret[4:]:             ErrMalformed,
		"Bearer " + strings.Repeat(" ", MaxHeaderLen) + secret: ErrMalformed,
	} {
		_, err := ParseBearer(h)
		if !errors.Is(err, want) || !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("ParseBearer(%.20q...) = %v, want %v", h, err, want)
		}
		if err != nil && strings.Contains(err.Error(), secret[4:]) {
			t.Errorf("error %q quotes the secret", err)
		}
	}
}

func FuzzParseBearer(f *testing.F) {
	secret, _ := Generate()
	for _, s := range []string{"", "Bearer " + secret, "bearer  " + secret, "Bearer plt_", "Basic x", "Bearer " + secret + "\x00", "Bearer\t" + secret} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		got, err := ParseBearer(h)
		if err != nil {
			if got != "" || !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("ParseBearer(%q) = %q, %v", h, got, err)
			}
			if len(err.Error()) > 64 {
				t.Fatalf("error %q is long (does it quote the input?)", err)
			}
			return
		}
		if !ValidSecret(got) || !strings.Contains(h, got) || len(h) > MaxHeaderLen {
			t.Fatalf("ParseBearer(%q) = %q", h, got)
		}
		if again, err := ParseBearer("Bearer " + got); err != nil || again != got {
			t.Fatalf("round trip of %q: %q, %v", got, again, err)
		}
	})
}
