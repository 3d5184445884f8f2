package natsx

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-chat/switchboard/kit/errs"
)

// IsUnavailable reports a failure of NATS or JetStream to answer rather than
// a defect: the connection is down or reconnecting, a request timed out or
// found no responder, a stream is electing its leader, or the cluster has
// no quorum or no peer to place on. Such a command may have taken effect;
// the client learns "unavailable" and retries (a send with the same
// clientMsgId is deduplicated).
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	for _, target := range unavailableErrs {
		if errors.Is(err, target) {
			return true
		}
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code == 503 || apiErr.Code == 408 || unavailableCodes[apiErr.ErrorCode]
	}
	return false
}

var unavailableErrs = []error{
	context.DeadlineExceeded,
	context.Canceled, // the handler's budget was withdrawn (shutdown)
	nats.ErrTimeout,
	nats.ErrNoResponders,
	nats.ErrConnectionClosed,
	nats.ErrConnectionDraining,
	nats.ErrConnectionReconnecting,
	nats.ErrDisconnected,
	nats.ErrNoServers,
	nats.ErrStaleConnection,
	nats.ErrReconnectBufExceeded,
	nats.ErrSlowConsumer,
	jetstream.ErrNoStreamResponse,
	jetstream.ErrAsyncPublishTimeout,
	jetstream.ErrTooManyStalledMsgs,
	jetstream.ErrConnectionClosed,
	jetstream.ErrServerShutdown,
	jetstream.ErrJetStreamNotEnabled,
	jetstream.ErrJetStreamNotEnabledForAccount,
	jetstream.ErrJetStreamPublisherClosed,
}

// unavailableCodes are JetStream API error codes of a cluster that cannot
// serve a request right now (nats-server's errors.json), beyond those with
// HTTP-like code 503.
var unavailableCodes = map[jetstream.ErrorCode]bool{
	10005: true, // no suitable peers for placement (peers down)
	10006: true, // not in clustered mode (yet)
	10007: true, // cluster not assigned to this server
	10008: true, // JetStream system temporarily unavailable
	10009: true, // cluster can not handle request (no meta leader)
	10023: true, // insufficient resources
	10118: true, // stream is offline
	10119: true, // consumer is offline
	10158: true, // duplicate message id is in process (a resend while the first is proposed)
	10163: true, // expected last sequence per subject temporarily unavailable
	10194: true, // stream is offline: reason
	10195: true, // consumer is offline: reason
}

// AsError is err as the client sees it: an *errs.Error as is, a failure of
// NATS to answer (IsUnavailable) errs.Unavailable, anything else
// errs.Internal (a defect, whose cause the caller logs).
func AsError(err error) *errs.Error {
	var e *errs.Error
	if errors.As(err, &e) {
		return e
	}
	if IsUnavailable(err) {
		return errs.Unavailable
	}
	return errs.Internal
}
