// Package bearer sends a Pluto API token with every gRPC call, as the
// "authorization: Bearer <token>" metadata the servers read
// (internal/auth.ParseBearer). The client and worker packages share it so
// that the header is spelled one way.
package bearer

import (
	"context"
	"errors"
)

// Token is gRPC per-RPC credentials carrying a bearer token.
//
// It does not require transport security: `pluto dev` serves loopback
// without TLS, and refusing plaintext there would only push people to
// run without tokens. Whether to use TLS is the dialer's choice.
type Token string

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (t Token) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(t)}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials.
func (Token) RequireTransportSecurity() bool { return false }

// Check reports whether t can travel as gRPC metadata: printable ASCII
// without spaces, as every Pluto token (plt_…) is. The error never quotes
// the token.
func Check(t string) error {
	if t == "" {
		return errors.New("empty token")
	}
	for i := 0; i < len(t); i++ {
		if t[i] <= ' ' || t[i] >= 0x7f {
			return errors.New("token holds a space, a control or a non-ASCII character (a Pluto token is plt_ and 43 letters and digits)")
		}
	}
	return nil
}
