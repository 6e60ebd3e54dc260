package konfig

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Error is every error the SDK returns. Code is the server's error code (UNAUTHENTICATED,
// NOT_FOUND, ...) or one of the client's own: CONNECTION_ERROR, MISSING_KEY, WRONG_TYPE.
// Compare with errors.Is against the Err* values: errors.Is(err, konfig.ErrUnauthenticated).
type Error struct {
	Code       string
	Message    string
	Status     int                    // the HTTP status, 0 when there was no answer
	Details    map[string]interface{} // the server's details, e.g. {"namespace": "shared"}
	RetryAfter time.Duration          // the server's Retry-After on RATE_LIMITED
	Err        error                  // the underlying cause, e.g. the network error
}

func (e *Error) Error() string { return e.Message }

// Unwrap returns the cause (a network error for CONNECTION_ERROR).
func (e *Error) Unwrap() error { return e.Err }

// Is matches errors of the same code: errors.Is(err, konfig.ErrNotFound).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Message == "" && t.Code == e.Code
}

// Values to compare errors with, one per code.
var (
	ErrValidation         = &Error{Code: "VALIDATION_ERROR"}
	ErrUnauthenticated    = &Error{Code: "UNAUTHENTICATED"}
	ErrForbidden          = &Error{Code: "FORBIDDEN"}
	ErrNotFound           = &Error{Code: "NOT_FOUND"}
	ErrConflict           = &Error{Code: "CONFLICT"}
	ErrPreconditionFailed = &Error{Code: "PRECONDITION_FAILED"}
	ErrPayloadTooLarge    = &Error{Code: "PAYLOAD_TOO_LARGE"}
	ErrRateLimited        = &Error{Code: "RATE_LIMITED"}
	ErrServer             = &Error{Code: "INTERNAL"}
	ErrConnection         = &Error{Code: "CONNECTION_ERROR"}
	ErrMissingKey         = &Error{Code: "MISSING_KEY"}
	ErrWrongType          = &Error{Code: "WRONG_TYPE"}
)

var codeByStatus = map[int]string{
	401: "UNAUTHENTICATED",
	403: "FORBIDDEN",
	404: "NOT_FOUND",
	409: "CONFLICT",
	412: "PRECONDITION_FAILED",
	413: "PAYLOAD_TOO_LARGE",
	422: "VALIDATION_ERROR",
	429: "RATE_LIMITED",
}

// errorFromResponse reads an error answer ({"status": "error", "error": {...}}) into an *Error.
func errorFromResponse(resp *http.Response) *Error {
	var body struct {
		Error struct {
			Code    string                 `json:"code"`
			Message string                 `json:"message"`
			Details map[string]interface{} `json:"details"`
		} `json:"error"`
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	_ = json.Unmarshal(raw, &body) // a proxy's page is not the error shape: the status tells
	e := &Error{
		Code:    body.Error.Code,
		Message: body.Error.Message,
		Status:  resp.StatusCode,
		Details: body.Error.Details,
	}
	if resp.StatusCode >= 500 {
		e.Code = "INTERNAL"
	} else if e.Code == "" {
		e.Code = codeByStatus[resp.StatusCode]
		if e.Code == "" {
			e.Code = "ERROR"
		}
	}
	if e.Message == "" {
		e.Message = "HTTP " + resp.Status
	}
	if seconds, err := strconv.ParseFloat(resp.Header.Get("Retry-After"), 64); err == nil && seconds >= 0 {
		e.RetryAfter = time.Duration(seconds * float64(time.Second))
	}
	return e
}

// transient tells whether a watch should try again after err: network, 5xx, 429.
func transient(err error) bool {
	return errors.Is(err, ErrConnection) || errors.Is(err, ErrServer) || errors.Is(err, ErrRateLimited)
}

func connectionError(url string, err error) *Error {
	return &Error{Code: "CONNECTION_ERROR", Message: fmt.Sprintf("cannot reach Konfig at %s: %v", url, err), Err: err}
}
