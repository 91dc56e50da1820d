package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/pluto-sched/pluto/internal/engine"
	"github.com/pluto-sched/pluto/internal/store"
)

// Error codes of the HTTP API's error envelope.
const (
	codeBadRequest       = "bad_request"
	codeBadJSON          = "bad_json"
	codeNotFound         = "not_found"
	codeConflict         = "conflict"
	codePayloadTooLarge  = "payload_too_large"
	codeMethodNotAllowed = "method_not_allowed"
	codeUnavailable      = "unavailable"
	codeTimeout          = "timeout"
	codeInternal         = "internal"
	// Authentication and browser safety (httpguard.go, httpauth.go).
	codeUnauthenticated      = "unauthenticated"
	codeForbidden            = "forbidden"
	codeUnsupportedMediaType = "unsupported_media_type"
)

// apiError is an error with its HTTP status, code and (optionally) the
// request field at fault.
type apiError struct {
	Status  int
	Code    string
	Message string
	Field   string
}

func (e *apiError) Error() string {
	if e.Field != "" {
		return e.Field + ": " + e.Message
	}
	return e.Message
}

func badRequest(field, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: codeBadRequest, Field: field, Message: fmt.Sprintf(format, args...)}
}

func badJSON(format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: codeBadJSON, Message: fmt.Sprintf(format, args...)}
}

func tooLarge(field, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusRequestEntityTooLarge, Code: codePayloadTooLarge, Field: field, Message: fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) *apiError {
	return &apiError{Status: http.StatusNotFound, Code: codeNotFound, Message: fmt.Sprintf(format, args...)}
}

// toAPIError maps an error from the engine (or the HTTP layer) to its
// status and code:
//
//	*apiError                  as is
//	*engine.FieldError         400 bad_request, field named
//	engine.ErrPayloadTooLarge  413 payload_too_large
//	store.ErrNotFound          404 not_found
//	store.ErrConflict          409 conflict
//	engine.ErrStopped, store.ErrClosed  503 unavailable
//	context deadline           504 timeout
//	context canceled           503 unavailable (the client went away)
//	anything else              500 internal
func toAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	var fe *engine.FieldError
	if errors.As(err, &fe) {
		return &apiError{Status: http.StatusBadRequest, Code: codeBadRequest, Field: fe.Field, Message: fe.Message}
	}
	switch {
	case errors.Is(err, engine.ErrPayloadTooLarge):
		return &apiError{Status: http.StatusRequestEntityTooLarge, Code: codePayloadTooLarge, Field: "payload", Message: err.Error()}
	case errors.Is(err, store.ErrNotFound):
		return &apiError{Status: http.StatusNotFound, Code: codeNotFound, Message: err.Error()}
	case errors.Is(err, store.ErrConflict):
		return &apiError{Status: http.StatusConflict, Code: codeConflict, Message: err.Error()}
	case errors.Is(err, engine.ErrStopped), errors.Is(err, store.ErrClosed):
		return &apiError{Status: http.StatusServiceUnavailable, Code: codeUnavailable, Message: err.Error()}
	case errors.Is(err, context.DeadlineExceeded):
		return &apiError{Status: http.StatusGatewayTimeout, Code: codeTimeout, Message: err.Error()}
	case errors.Is(err, context.Canceled):
		return &apiError{Status: http.StatusServiceUnavailable, Code: codeUnavailable, Message: err.Error()}
	}
	return &apiError{Status: http.StatusInternalServerError, Code: codeInternal, Message: err.Error()}
}

// writeError writes the error envelope for err.
func writeError(w http.ResponseWriter, err error) {
	ae := toAPIError(err)
	writeJSON(w, ae.Status, errorJSON{Error: errorBody{Code: ae.Code, Message: ae.Message, Field: ae.Field}})
}
