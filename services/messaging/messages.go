package messaging

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-chat/switchboard/kit/errs"
	"github.com/switchboard-chat/switchboard/kit/files"
	"github.com/switchboard-chat/switchboard/kit/natsx"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// ownAction checks a command a participant makes for itself (receipts,
// typing): a valid conversation id, not the system, a participant.
func (s *Service) ownAction(ctx context.Context, p *chatv1.Principal, conv string) error {
	var f errs.Fields
	f.ID("conversationId", conv)
	if err := f.Err(); err != nil {
		return err
	}
	if p.System {
		return errs.Forbidden("only participants do this, for themselves")
	}
	_, err := s.memberConv(ctx, p, conv)
	return err
}

// memberConv loads a conversation the principal may act in.
func (s *Service) memberConv(ctx context.Context, p *chatv1.Principal, conv string) (*chatv1.Conversation, error) {
	c, _, err := s.getConv(ctx, p.Org, conv)
	if err != nil {
		return nil, err
	}
	if !isParticipant(c, p) {
		return nil, errNotParticipant
	}
	return c, nil
}

func (s *Service) send(ctx context.Context, req *chatv1.SendRequest) (*chatv1.SendResponse, error) {
	p := req.Principal
	var f errs.Fields
	f.ID("conversationId", req.ConversationId)
	if req.Content != "" || len(req.Attachments) == 0 {
		s.checkContent(&f, req.Content) // may be empty with attachments
	}
	checkClientMsgID(&f, req.ClientMsgId)
	if req.ReplyTo != "" {
		f.ID("replyTo", req.ReplyTo)
	}
	checkAttachments(&f, req.Attachments)
	if err := f.Err(); err != nil {
		return nil, err
	}
	if err := s.checkReplyTo(ctx, p, req); err != nil {
		return nil, err
	}
	var fresh []*files.File
	var atts []*chatv1.Attachment
	if len(req.Attachments) > 0 {
		var err error
		if atts, fresh, err = s.attach(ctx, p, req.ConversationId, req.Attachments, files.Claim(p.User, req.ClientMsgId)); err != nil {
			return nil, err
		}
	}
	// The id is made from the seq once the event is stored (msgid.go).
	msg := &chatv1.MessageNew{
		SenderId:    p.User,
		Content:     req.Content,
		ClientMsgId: req.ClientMsgId,
		CreatedAtMs: s.cfg.Now().UnixMilli(),
		ReplyTo:     req.ReplyTo,
		Attachments: atts,
	}
	ev := &chatv1.Event{ConversationId: req.ConversationId, Body: &chatv1.Event_MessageNew{MessageNew: msg}}
	// The membership check runs before each attempt, against the last seq
	// the attempt expects (convcache.go).
	check := s.senderCheck(p, req.ConversationId)
	res, err := s.appendEvent(ctx, p.Org, req.ConversationId, ev, dedupeID(p.Org, req.ConversationId, p.User, req.ClientMsgId), check.run)
	s.settleClaims(ctx, p.Org, req.ConversationId, res, err, fresh)
	if err != nil {
		return nil, err
	}
	if !res.duplicate {
		check.appended(res.seq)
	}
	if res.duplicate {
		return s.resend(ctx, p.Org, req.ConversationId, res.seq)
	}
	return &chatv1.SendResponse{MessageId: msg.MessageId, Seq: res.seq, CreatedAtMs: msg.CreatedAtMs}, nil
}

// checkReplyTo checks that a send's replyTo names a message of its
// conversation (deleted or not: replying to a deleted message is allowed,
// as chat apps do); any other id is not_found. It runs before the append:
// a message, once stored, stays a message of that conversation. The
// membership check is the append's; a caller who is no participant gets
// forbidden or not_found for the conversation first.
func (s *Service) checkReplyTo(ctx context.Context, p *chatv1.Principal, req *chatv1.SendRequest) error {
	if req.ReplyTo == "" {
		return nil
	}
	if _, err := s.memberConv(ctx, p, req.ConversationId); err != nil {
		return err
	}
	if _, _, err := s.messageState(ctx, p.Org, req.ConversationId, req.ReplyTo); err != nil {
		if errs.Is(err, errs.CodeNotFound) {
			return errs.NotFound("replyTo message")
		}
		return err
	}
	return nil
}

// resend answers a duplicate send with the original ack, and publishes the
// original event again in case its first live publish was lost (edges drop
// a seq they delivered already).
func (s *Service) resend(ctx context.Context, org, conv string, seq uint64) (*chatv1.SendResponse, error) {
	ev, err := s.eventAt(ctx, org, conv, seq)
	if err != nil {
		return nil, err
	}
	if ev == nil {
		// Stored (the stream said duplicate) but not readable here: a
		// direct get answered by a replica that has not caught up yet.
		return nil, errs.New(errs.CodeUnavailable, "message not readable yet; retry with the same clientMsgId")
	}
	m := ev.GetMessageNew()
	if m == nil {
		return nil, fmt.Errorf("duplicate of seq %d is not a message", seq)
	}
	if m.MessageId != messageID(m.CreatedAtMs, seq) {
		// Stored before ids were made from seqs: the first attempt may
		// have stopped before recording the message's state.
		st := &chatv1.MessageState{Seq: seq, SenderId: m.SenderId}
		if _, err := s.putMessageState(ctx, org, conv, m.MessageId, st, 0); err != nil && !natsx.IsWrongLastSequence(err) && !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, err
		}
	}
	s.publishLive(org, conv, ev)
	return &chatv1.SendResponse{MessageId: m.MessageId, Seq: seq, CreatedAtMs: m.CreatedAtMs, Duplicate: true}, nil
}

// putMessageState creates (rev 0) or updates (rev > 0) a message's state
// and returns its new revision.
func (s *Service) putMessageState(ctx context.Context, org, conv, msgID string, st *chatv1.MessageState, rev uint64) (uint64, error) {
	data, err := proto.Marshal(st)
	if err != nil {
		return 0, err
	}
	key := names.MessageKey(org, conv, msgID)
	ctx, cancel := write(ctx)
	defer cancel()
	if rev == 0 {
		return s.messages.Create(ctx, key, data)
	}
	return s.messages.Update(ctx, key, data, rev)
}

// ownMessage loads a live message of the conversation that the principal
// sent: another's is forbidden, a deleted or unknown one not_found. Its
// state is in chat_messages once it was edited, deleted or stored before
// ids were made from seqs; else it is the stored event's (revision 0).
func (s *Service) ownMessage(ctx context.Context, p *chatv1.Principal, conv, msgID string) (*chatv1.MessageState, uint64, error) {
	st, rev, err := s.messageState(ctx, p.Org, conv, msgID)
	if err != nil {
		return nil, 0, err
	}
	if st.Deleted {
		return nil, 0, errs.NotFound("message")
	}
	if st.SenderId != p.User {
		return nil, 0, errs.Forbidden("only the sender may change a message")
	}
	return st, rev, nil
}

// messageState loads the state of a message of the conversation, deleted
// or not (not_found: no message of this conversation has that id). It is
// in chat_messages once the message was edited, deleted or stored before
// ids were made from seqs; else it is the stored event's (revision 0).
func (s *Service) messageState(ctx context.Context, org, conv, msgID string) (*chatv1.MessageState, uint64, error) {
	st, rev, err := getProto[chatv1.MessageState](ctx, s.messages, names.MessageKey(org, conv, msgID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		st, err = s.storedMessage(ctx, org, conv, msgID)
		return st, 0, err
	}
	return st, rev, err
}

// storedMessage is the state of a message whose id was made from its seq,
// from its stored event: not_found for any other id, or an event that is
// not that message of this conversation.
func (s *Service) storedMessage(ctx context.Context, org, conv, msgID string) (*chatv1.MessageState, error) {
	ms, seq, ok := messageSeq(msgID)
	if !ok {
		return nil, errs.NotFound("message")
	}
	ev, err := s.eventAt(ctx, org, conv, seq)
	if err != nil {
		return nil, err
	}
	m := ev.GetMessageNew()
	if m == nil || m.CreatedAtMs != ms || m.MessageId != msgID {
		return nil, errs.NotFound("message")
	}
	return &chatv1.MessageState{Seq: seq, SenderId: m.SenderId}, nil
}

func (s *Service) edit(ctx context.Context, req *chatv1.EditRequest) (*chatv1.EditResponse, error) {
	p := req.Principal
	var f errs.Fields
	f.ID("conversationId", req.ConversationId)
	f.ID("messageId", req.MessageId)
	s.checkContent(&f, req.Content)
	if err := f.Err(); err != nil {
		return nil, err
	}
	if _, err := s.memberConv(ctx, p, req.ConversationId); err != nil {
		return nil, err
	}
	at := s.cfg.Now().UnixMilli()
	ev := &chatv1.Event{ConversationId: req.ConversationId, Body: &chatv1.Event_MessageEdited{MessageEdited: &chatv1.MessageEdited{
		MessageId: req.MessageId, SenderId: p.User, Content: req.Content, EditedAtMs: at,
	}}}
	// Checked before every attempt: a delete marks the message first, so
	// no edit is stored after its message's deletion.
	res, err := s.appendEvent(ctx, p.Org, req.ConversationId, ev, "", func(ctx context.Context, _ uint64) error {
		_, _, err := s.ownMessage(ctx, p, req.ConversationId, req.MessageId)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &chatv1.EditResponse{Seq: res.seq, EditedAtMs: at}, nil
}

func (s *Service) delete(ctx context.Context, req *chatv1.DeleteRequest) (*chatv1.DeleteResponse, error) {
	p := req.Principal
	var f errs.Fields
	f.ID("conversationId", req.ConversationId)
	f.ID("messageId", req.MessageId)
	if err := f.Err(); err != nil {
		return nil, err
	}
	if _, err := s.memberConv(ctx, p, req.ConversationId); err != nil {
		return nil, err
	}
	st, rev, err := s.ownMessage(ctx, p, req.ConversationId, req.MessageId)
	if err != nil {
		return nil, err
	}
	// Marked before the event is stored, with compare-and-set: of two
	// deletes one wins, and an edit checking after this sees it (edit).
	st.Deleted = true
	marked, err := s.putMessageState(ctx, p.Org, req.ConversationId, req.MessageId, st, rev)
	if natsx.IsWrongLastSequence(err) || errors.Is(err, jetstream.ErrKeyExists) {
		return nil, errs.NotFound("message")
	}
	if err != nil {
		return nil, err
	}
	at := s.cfg.Now().UnixMilli()
	ev := &chatv1.Event{ConversationId: req.ConversationId, Body: &chatv1.Event_MessageDeleted{MessageDeleted: &chatv1.MessageDeleted{
		MessageId: req.MessageId, SenderId: p.User, DeletedAtMs: at,
	}}}
	res, err := s.appendEvent(ctx, p.Org, req.ConversationId, ev, "", nil)
	if err != nil {
		// Not deleted after all: unmark, so that the delete can be retried.
		st.Deleted = false
		if _, uerr := s.putMessageState(ctx, p.Org, req.ConversationId, req.MessageId, st, marked); uerr != nil {
			s.log.Error("unmark a message whose delete failed", "org", p.Org, "err", uerr)
		}
		return nil, err
	}
	s.dropReactions(ctx, p.Org, req.ConversationId, req.MessageId)
	s.removeFiles(p.Org, req.ConversationId, st.Seq)
	return &chatv1.DeleteResponse{Seq: res.seq, DeletedAtMs: at}, nil
}

func (s *Service) history(ctx context.Context, req *chatv1.HistoryRequest) (*chatv1.HistoryResponse, error) {
	p := req.Principal
	var f errs.Fields
	f.ID("conversationId", req.ConversationId)
	n := page(&f, req.Limit)
	if req.BeforeSeq != nil && req.AfterSeq != nil && *req.AfterSeq >= *req.BeforeSeq {
		f.Add("afterSeq", "must be less than beforeSeq")
	}
	if err := f.Err(); err != nil {
		return nil, err
	}
	if _, err := s.memberConv(ctx, p, req.ConversationId); err != nil {
		return nil, err
	}
	var resp chatv1.HistoryResponse
	b := s.budget(historyFixedBytes)
	var err error
	switch {
	case req.AfterSeq != nil:
		resp.Events, resp.HasMore, err = s.eventsAfter(ctx, p.Org, req.ConversationId, *req.AfterSeq, req.GetBeforeSeq(), n, b)
	case req.BeforeSeq != nil && *req.BeforeSeq == 0:
		// Nothing comes before the beginning.
	default:
		resp.Events, resp.HasMore, err = s.eventsBefore(ctx, p.Org, req.ConversationId, req.GetBeforeSeq(), n, b)
	}
	if err != nil {
		return nil, err
	}
	if err := s.redactDeleted(ctx, p.Org, req.ConversationId, resp.Events); err != nil {
		return nil, err
	}
	return &resp, nil
}
