package svc

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-chat/switchboard/kit/errs"
	"github.com/switchboard-chat/switchboard/kit/natsx"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
)

// DefaultCallTimeout bounds a Call whose context has no deadline.
const DefaultCallTimeout = 5 * time.Second

// Response is what every reply of the contract has: an error field.
type Response interface {
	proto.Message
	GetError() *chatv1.Error
}

// Call sends req to subject and decodes the reply into resp. No responder,
// a timeout or a lost connection is errs.Unavailable; the reply's own error
// is returned as an *errs.Error.
func Call(ctx context.Context, nc *nats.Conn, subject string, req proto.Message, resp Response) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultCallTimeout)
		defer cancel()
	}
	data, err := proto.Marshal(req)
	if err != nil {
		return fmt.Errorf("marshal %T: %w", req, err)
	}
	msg, err := nc.RequestWithContext(ctx, subject, data)
	if err != nil {
		if natsx.IsUnavailable(err) {
			return errs.Unavailable
		}
		return fmt.Errorf("request: %w", err)
	}
	if err := proto.Unmarshal(msg.Data, resp); err != nil {
		return fmt.Errorf("unmarshal %T: %w", resp, err)
	}
	if e := errs.FromProto(resp.GetError()); e != nil {
		return e
	}
	return nil
}
