package natsx

import (
	"errors"

	"github.com/nats-io/nats.go/jetstream"
)

// IsWrongLastSequence reports a failed expected-sequence check: a stream
// publish with an expected last (subject) sequence, or a KV Create or Update
// that lost a race. R1 streams answer 10071, replicated ones 10164.
func IsWrongLastSequence(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
	}
	return false
}
