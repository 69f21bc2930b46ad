package registry

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Confluent error codes. The HTTP status of an error is the first three
// digits of its code.
const (
	codeUnauthorized               = 401
	codeNotFound                   = 404
	codeIncompatibleSchema         = 409
	codeSubjectNotFound            = 40401
	codeVersionNotFound            = 40402
	codeSchemaNotFound             = 40403
	codeSubjectSoftDeleted         = 40404
	codeSubjectNotSoftDeleted      = 40405
	codeVersionSoftDeleted         = 40406
	codeVersionNotSoftDeleted      = 40407
	codeSubjectCompatNotConfigured = 40408
	codeInvalidSchema              = 42201
	codeInvalidVersion             = 42202
	codeInvalidCompatibility       = 42203
	codeOperationNotPermitted      = 42205
	codeInvalidSubject             = 42208
	codeSchemaTooLarge             = 42209
	codeStoreError                 = 50001
	codeOperationTimeout           = 50002
)

// apiError is an error that is reported to HTTP clients as the Confluent
// error body {"error_code": Code, "message": Message}.
type apiError struct {
	Code    int    `json:"error_code"`
	Message string `json:"message"`
	cause   error
}

func (e *apiError) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("%s (error code %d): %v", e.Message, e.Code, e.cause)
	}
	return fmt.Sprintf("%s (error code %d)", e.Message, e.Code)
}

func (e *apiError) Unwrap() error { return e.cause }

// status is the HTTP status for the error: the first three digits of its
// code, or 500 when that is not a valid HTTP error status.
func (e *apiError) status() int {
	c := e.Code
	for c >= 1000 {
		c /= 10
	}
	if c < 400 || c > 599 {
		return http.StatusInternalServerError
	}
	return c
}

func newAPIError(code int, format string, args ...any) *apiError {
	return &apiError{Code: code, Message: fmt.Sprintf(format, args...)}
}

func errSubjectNotFound(subject string) *apiError {
	return newAPIError(codeSubjectNotFound, "Subject '%s' not found.", subject)
}

func errVersionNotFound(version int) *apiError {
	return newAPIError(codeVersionNotFound, "Version %d not found.", version)
}

func errSchemaNotFound() *apiError {
	return newAPIError(codeSchemaNotFound, "Schema not found")
}

func errSchemaIDNotFound(id string) *apiError {
	return newAPIError(codeSchemaNotFound, "Schema %s not found", id)
}

func errInvalidVersion(version string) *apiError {
	return newAPIError(codeInvalidVersion,
		"The specified version '%s' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"",
		version)
}

func errInvalidCompatibility() *apiError {
	return newAPIError(codeInvalidCompatibility,
		"Invalid compatibility level. Valid values are none, backward, forward, full, "+
			"backward_transitive, forward_transitive, and full_transitive")
}

func errInvalidSchema(format string, args ...any) *apiError {
	return newAPIError(codeInvalidSchema, format, args...)
}

// errStore wraps a failure of the Kafka store. Timeouts become 50002, every
// other failure 50001.
func errStore(op string, err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	if errors.Is(err, kerr.MessageTooLarge) {
		return &apiError{Code: codeSchemaTooLarge, Message: op + " operation failed because the record is too large for the Kafka topic", cause: err}
	}
	if errors.Is(err, errTimeout) {
		return &apiError{Code: codeOperationTimeout, Message: op + " operation timed out", cause: err}
	}
	return &apiError{Code: codeStoreError, Message: op + " operation failed while writing to the Kafka store", cause: err}
}

// errTimeout marks store operations that ran out of time.
var errTimeout = errors.New("timed out waiting for the Kafka store")
