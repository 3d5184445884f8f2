package presence

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-chat/switchboard/kit/errs"
	"github.com/switchboard-chat/switchboard/kit/ids"
	"github.com/switchboard-chat/switchboard/kit/natsx"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// maxQuery bounds the users of one query (a join asks for every
// participant of a conversation).
const maxQuery = 1000

// update writes the connection states an edge reported: each live one
// renews its key's TTL (compare-and-set against the revision in the view,
// so that a connection that closed meanwhile is not brought back), each
// gone one is deleted with a delete marker that itself expires. The writes
// of a batch go out together and are acknowledged together.
func (s *Service) update(ctx context.Context, req *chatv1.PresenceUpdate) (*chatv1.PresenceUpdateResponse, error) {
	org := req.Principal.Org
	type write struct {
		st     *chatv1.ConnectionState
		key    string
		future jetstream.PubAckFuture
	}
	writes := make([]write, 0, len(req.Connections))
	for _, st := range req.Connections {
		if !ids.Valid(st.User) || !ids.Valid(st.Connection) || (!st.Gone && st.Status != Online && st.Status != Away) {
			continue
		}
		w := write{st: st, key: names.PresenceKey(org, st.User, st.Connection)}
		msg, opts := s.entryMsg(org, req.Edge, st, s.view.rev(org, st.User, st.Connection))
		f, err := s.js.PublishMsgAsync(msg, opts...)
		if err != nil {
			return nil, fmt.Errorf("presence write: %w", err)
		}
		w.future = f
		writes = append(writes, w)
	}
	for _, w := range writes {
		select {
		case <-w.future.Ok():
			s.metrics.writes.WithLabelValues(kind(w.st)).Inc()
		case err := <-w.future.Err():
			if !natsx.IsWrongLastSequence(err) {
				return nil, fmt.Errorf("presence write: %w", err)
			}
			s.metrics.writes.WithLabelValues("conflict").Inc()
			if err := s.resolve(ctx, org, req.Edge, w.st, w.key); err != nil {
				return nil, err
			}
		case <-ctx.Done():
			return nil, errs.Unavailable
		}
	}
	return &chatv1.PresenceUpdateResponse{}, nil
}

func kind(st *chatv1.ConnectionState) string {
	if st.Gone {
		return "gone"
	}
	return "renew"
}

// entryMsg is the write of one connection state: a delete marker that
// expires after two TTLs, or the entry with the key's TTL, expected at rev.
func (s *Service) entryMsg(org, edge string, st *chatv1.ConnectionState, rev uint64) (*nats.Msg, []jetstream.PublishOpt) {
	msg := &nats.Msg{Subject: names.KVSubject(names.BucketPresence, names.PresenceKey(org, st.User, st.Connection)), Header: nats.Header{}}
	if st.Gone {
		msg.Header.Set("KV-Operation", "DEL")
		return msg, []jetstream.PublishOpt{jetstream.WithMsgTTL(2 * s.cfg.TTL)}
	}
	msg.Data, _ = proto.Marshal(&chatv1.PresenceEntry{Edge: edge, Status: st.Status, LastActiveMs: st.LastActiveMs})
	return msg, []jetstream.PublishOpt{jetstream.WithExpectLastSequencePerSubject(rev), jetstream.WithMsgTTL(s.cfg.TTL)}
}

// resolve retries a renewal whose expected revision was stale: against the
// key's real last message, unless that is a delete marker (the connection
// closed: it stays closed).
func (s *Service) resolve(ctx context.Context, org, edge string, st *chatv1.ConnectionState, key string) error {
	for range 4 {
		var rev uint64
		last, err := s.stream.GetLastMsgForSubject(ctx, names.KVSubject(names.BucketPresence, key))
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
		case err != nil:
			return fmt.Errorf("presence read: %w", err)
		case last.Header.Get("KV-Operation") == "DEL":
			return nil
		default:
			rev = last.Sequence
		}
		msg, opts := s.entryMsg(org, edge, st, rev)
		_, err = s.js.PublishMsg(ctx, msg, opts...)
		if err == nil {
			s.metrics.writes.WithLabelValues("create").Inc()
			return nil
		}
		if !natsx.IsWrongLastSequence(err) {
			return fmt.Errorf("presence write: %w", err)
		}
	}
	return errs.New(errs.CodeConflict, "presence entry changed concurrently")
}

// saveLastSeen records when a user was last seen (best effort), when the
// user is published offline.
func (s *Service) saveLastSeen(org, user string, ms int64) {
	if ms <= 0 {
		return
	}
	data, _ := proto.Marshal(&chatv1.LastSeen{LastSeenMs: ms})
	if _, err := s.js.PublishAsync(names.KVSubject(names.BucketPresence, names.LastSeenKey(org, user)), data); err != nil {
		s.log.Warn("save last seen", "org", org, "err", err)
	}
}

func (s *Service) query(_ context.Context, req *chatv1.PresenceQuery) (*chatv1.PresenceQueryResponse, error) {
	if len(req.UserIds) > maxQuery {
		return nil, errs.Invalid(errs.Field{Field: "userIds", Reason: errs.ReasonAtMost(maxQuery, "users")})
	}
	var f errs.Fields
	if !f.IDs("userIds", req.UserIds) {
		return nil, f.Err()
	}
	return &chatv1.PresenceQueryResponse{Presence: s.view.query(req.Principal.Org, req.UserIds)}, nil
}
