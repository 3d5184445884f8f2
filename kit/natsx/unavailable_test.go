package natsx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-chat/switchboard/kit/errs"
)

func TestAsError(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want *errs.Error
	}{
		{fmt.Errorf("append: %w", jetstream.ErrNoStreamResponse), errs.Unavailable},
		{fmt.Errorf("last event: %w", context.DeadlineExceeded), errs.Unavailable},
		{fmt.Errorf("%w: %w", ErrDirect, nats.ErrTimeout), errs.Unavailable},
		{nats.ErrNoResponders, errs.Unavailable},
		{nats.ErrConnectionReconnecting, errs.Unavailable},
		{fmt.Errorf("get: %w", &jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}), errs.Unavailable},
		{&jetstream.APIError{Code: 400, ErrorCode: 10005, Description: "no suitable peers for placement"}, errs.Unavailable},
		{&jetstream.APIError{Code: 500, ErrorCode: 10118, Description: "stream is offline"}, errs.Unavailable},
		{fmt.Errorf("append: %w", &jetstream.APIError{Code: 409, ErrorCode: 10158, Description: "duplicate message id is in process"}), errs.Unavailable},
		{&jetstream.APIError{Code: 400, ErrorCode: 10071, Description: "wrong last sequence"}, errs.Internal},
		{fmt.Errorf("decode: %w", io.ErrUnexpectedEOF), errs.Internal},
		{errors.New("duplicate of seq 4 is not a message"), errs.Internal},
		{errs.NotFound("conversation"), errs.NotFound("conversation")},
	} {
		got := AsError(tc.err)
		if got.Code != tc.want.Code || got.Message != tc.want.Message {
			t.Errorf("AsError(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
