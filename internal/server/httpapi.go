package server

import "net/http"

// HTTPOptions configures the HTTP API.
type HTTPOptions struct {
	// MaxPayload is the largest accepted run payload in bytes (413 above).
	MaxPayload int64
	ServerID   string
	StoreName  string
}

// newHTTPHandler serves /api/v1, /healthz and /readyz. (Placeholder: being
// written.)
func newHTTPHandler(eng Engine, opts HTTPOptions) http.Handler { return http.NotFoundHandler() }
