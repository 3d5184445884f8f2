package messaging

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/switchboard-chat/switchboard/kit/errs"
	"github.com/switchboard-chat/switchboard/kit/ids"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

func (s *Service) create(ctx context.Context, req *chatv1.CreateConversationRequest) (*chatv1.CreateConversationResponse, error) {
	p := req.Principal
	var f errs.Fields
	participants := userList(&f, "participants", req.Participants)
	checkTitle(&f, req.Title)
	if !p.System && !slices.Contains(participants, p.User) {
		participants = append([]string{p.User}, participants...)
	}
	if len(participants) > s.cfg.MaxParticipants {
		f.Add("participants", errs.ReasonAtMost(s.cfg.MaxParticipants, "participants"))
	}
	if len(participants) == 0 {
		f.Add("participants", errs.ReasonEmpty)
	}
	if err := f.Err(); err != nil {
		return nil, err
	}
	conv := &chatv1.Conversation{
		ConversationId: ids.New(),
		Title:          req.Title,
		Participants:   participants,
		CreatedBy:      p.User,
		CreatedAtMs:    s.cfg.Now().UnixMilli(),
	}
	data, err := proto.Marshal(conv)
	if err != nil {
		return nil, err
	}
	if _, err := s.convs.Create(ctx, names.ConversationKey(p.Org, conv.ConversationId), data); err != nil {
		return nil, fmt.Errorf("create conversation: %w", err)
	}
	if err := s.putMemberships(ctx, p.Org, conv.ConversationId, participants); err != nil {
		return nil, err
	}
	if err := s.membershipChanged(ctx, p.Org, conv, participants, false); err != nil {
		return nil, err
	}
	return &chatv1.CreateConversationResponse{ConversationId: conv.ConversationId, Participants: participants}, nil
}

// membershipChanged appends a conversation_updated event and tells each user
// in notify (added or removed) on their user subject as well. Added users
// get a ConversationChanged notice, not the event: a copy of a list of up
// to MaxParticipants per user would make a change of n users cost n times
// the list; their edges fetch the event once each, as one of them. A
// removed user can no longer fetch it, and gets it whole (whole): a
// removal tells one user. A small conversation's event is sent whole as
// well: its copies cost about what the notices do, and no edge has to
// fetch it as a user who may have been removed again meanwhile.
func (s *Service) membershipChanged(ctx context.Context, org string, conv *chatv1.Conversation, notify []string, whole bool) error {
	whole = whole || len(conv.Participants) <= wholeEventParticipants
	ev := &chatv1.Event{
		ConversationId: conv.ConversationId,
		Body:           &chatv1.Event_ConversationUpdated{ConversationUpdated: &chatv1.ConversationUpdated{Participants: conv.Participants}},
	}
	if _, err := s.appendEvent(ctx, org, conv.ConversationId, ev, "", nil); err != nil {
		return err
	}
	if !whole {
		ev = &chatv1.Event{
			Seq: ev.Seq, PrevSeq: ev.PrevSeq, ConversationId: ev.ConversationId,
			Body: &chatv1.Event_ConversationChanged{ConversationChanged: &chatv1.ConversationChanged{}},
		}
	}
	s.publishUser(org, notify, ev)
	return nil
}

// wholeEventParticipants is the largest conversation whose membership
// events reach the users' subjects whole rather than as notices: 32 ids
// of at most 64 bytes keep a copy near 2 KiB.
const wholeEventParticipants = 32

func (s *Service) add(ctx context.Context, req *chatv1.AddParticipantsRequest) (*chatv1.ParticipantsResponse, error) {
	p := req.Principal
	var f errs.Fields
	f.ID("conversationId", req.ConversationId)
	users := userList(&f, "userIds", req.UserIds)
	if len(req.UserIds) == 0 {
		f.Add("userIds", errs.ReasonEmpty)
	}
	if err := f.Err(); err != nil {
		return nil, err
	}
	var added []string
	conv, changed, err := s.updateConv(ctx, p.Org, req.ConversationId, func(c *chatv1.Conversation) (bool, error) {
		if !isParticipant(c, p) {
			return false, errNotParticipant
		}
		added = added[:0]
		for _, u := range users {
			if !slices.Contains(c.Participants, u) {
				added = append(added, u)
			}
		}
		if len(c.Participants)+len(added) > s.cfg.MaxParticipants {
			return false, errs.Invalid(errs.Field{Field: "userIds", Reason: errs.ReasonAtMost(s.cfg.MaxParticipants, "participants")})
		}
		c.Participants = append(c.Participants, added...)
		return len(added) > 0, nil
	})
	if err != nil {
		return nil, err
	}
	if changed {
		if err := s.putMemberships(ctx, p.Org, conv.ConversationId, added); err != nil {
			return nil, err
		}
		if err := s.membershipChanged(ctx, p.Org, conv, added, false); err != nil {
			return nil, err
		}
	}
	return &chatv1.ParticipantsResponse{Participants: conv.Participants}, nil
}

func (s *Service) remove(ctx context.Context, req *chatv1.RemoveParticipantRequest) (*chatv1.ParticipantsResponse, error) {
	p := req.Principal
	var f errs.Fields
	f.ID("conversationId", req.ConversationId)
	f.ID("userId", req.UserId)
	if err := f.Err(); err != nil {
		return nil, err
	}
	conv, changed, err := s.updateConv(ctx, p.Org, req.ConversationId, func(c *chatv1.Conversation) (bool, error) {
		if !isParticipant(c, p) {
			return false, errNotParticipant
		}
		if req.UserId != p.User && c.CreatedBy != p.User && !p.System {
			return false, errs.Forbidden("only the creator may remove another participant")
		}
		i := slices.Index(c.Participants, req.UserId)
		if i < 0 {
			return false, errs.NotFound("participant")
		}
		c.Participants = slices.Delete(c.Participants, i, i+1)
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	if changed {
		if err := s.unindex(ctx, p.Org, req.UserId, conv.ConversationId); err != nil {
			return nil, err
		}
		if err := s.membershipChanged(ctx, p.Org, conv, []string{req.UserId}, true); err != nil {
			return nil, err
		}
	}
	return &chatv1.ParticipantsResponse{Participants: conv.Participants}, nil
}

func (s *Service) list(ctx context.Context, req *chatv1.ListConversationsRequest) (*chatv1.ListConversationsResponse, error) {
	p := req.Principal
	var f errs.Fields
	if req.IdsOnly {
		return s.listIDs(ctx, p, req.Limit)
	}
	n := page(&f, req.Limit)
	after, hasCursor := parseCursor(req.Cursor)
	if req.Cursor != "" && !hasCursor {
		f.Add("cursor", "not a cursor this server gave")
	}
	if err := f.Err(); err != nil {
		return nil, err
	}
	convIDs, err := s.userConversations(ctx, p.Org, p.User)
	if err != nil {
		return nil, err
	}
	all, lasts, err := s.summaries(ctx, p.Org, p.User, convIDs)
	if err != nil {
		return nil, err
	}
	// Most recent activity first: stream sequences are global, so a larger
	// last seq is a more recent event.
	slices.SortFunc(all, func(a, b *chatv1.ConversationSummary) int {
		return compareSummary(a.LastSeq, a.ConversationId, b.LastSeq, b.ConversationId)
	})
	start := 0
	if hasCursor {
		start, _ = slices.BinarySearchFunc(all, after, func(a *chatv1.ConversationSummary, c cursor) int {
			return compareSummary(a.LastSeq, a.ConversationId, c.lastSeq, c.conv)
		})
		if start < len(all) && all[start].ConversationId == after.conv && all[start].LastSeq == after.lastSeq {
			start++
		}
	}
	// The page ends at n conversations, or earlier when the next would not
	// fit in the reply; only the n read their unread counts and last
	// messages (inbox.go).
	if err := s.inbox(ctx, p.Org, p.User, all[start:min(len(all), start+n)], lasts); err != nil {
		return nil, err
	}
	b := s.budget(listFixedBytes)
	end := start
	for end < len(all) && end-start < n && b.summary(all[end]) {
		end++
	}
	resp := &chatv1.ListConversationsResponse{Conversations: all[start:end]}
	if end < len(all) && end > start {
		last := all[end-1]
		resp.Cursor = cursor{last.LastSeq, last.ConversationId}.String()
	}
	return resp, nil
}

func compareSummary(aSeq uint64, aID string, bSeq uint64, bID string) int {
	switch {
	case aSeq > bSeq:
		return -1
	case aSeq < bSeq:
		return 1
	}
	return strings.Compare(aID, bID)
}

// cursor is the position after which a conversation list page starts.
type cursor struct {
	lastSeq uint64
	conv    string
}

func (c cursor) String() string { return strconv.FormatUint(c.lastSeq, 10) + "." + c.conv }

func parseCursor(s string) (cursor, bool) {
	seq, conv, ok := strings.Cut(s, ".")
	if !ok || !ids.Valid(conv) {
		return cursor{}, false
	}
	n, err := strconv.ParseUint(seq, 10, 64)
	return cursor{n, conv}, err == nil
}

// summaries loads the records, last seqs and the caller's read markers of
// convIDs, a few batched reads for all of them, and returns the last events
// as read, by conversation.
func (s *Service) summaries(ctx context.Context, org, user string, convIDs []string) ([]*chatv1.ConversationSummary, map[string]storedEvent, error) {
	out := make([]*chatv1.ConversationSummary, 0, len(convIDs))
	lastEv := make(map[string]storedEvent, len(convIDs))
	for len(convIDs) > 0 {
		chunk := convIDs[:min(len(convIDs), 1000)]
		convIDs = convIDs[len(chunk):]
		var recSubj, lastSubj, readSubj []string
		for _, c := range chunk {
			recSubj = append(recSubj, names.KVSubject(names.BucketConversations, names.ConversationKey(org, c)))
			lastSubj = append(lastSubj, names.Store(org, c))
			readSubj = append(readSubj, names.KVSubject(names.BucketReceipts, names.ReceiptKey(org, c, user)))
		}
		recs, err := s.multiLast(ctx, names.KVStream(names.BucketConversations), recSubj, 0)
		if err != nil {
			return nil, nil, fmt.Errorf("load conversations: %w", err)
		}
		lasts, err := s.multiLast(ctx, names.StreamEvents, lastSubj, 0)
		if err != nil {
			return nil, nil, fmt.Errorf("load last events: %w", err)
		}
		reads, err := s.multiLast(ctx, names.KVStream(names.BucketReceipts), readSubj, 0)
		if err != nil {
			return nil, nil, fmt.Errorf("load receipts: %w", err)
		}
		lastBy := map[string]uint64{}
		for _, m := range lasts.Msgs {
			lastBy[lastToken(m.Subject)] = m.Seq
			lastEv[lastToken(m.Subject)] = storedEvent{m.Seq, m.Data}
		}
		readBy := map[string]uint64{}
		for _, m := range reads.Msgs {
			r := &chatv1.ReceiptState{}
			if !m.IsKVMarker() && proto.Unmarshal(m.Data, r) == nil {
				readBy[r.UserId+"/"+convOfReceipt(m.Subject)] = r.Read
			}
		}
		for _, m := range recs.Msgs {
			c := &chatv1.Conversation{}
			if m.IsKVMarker() || proto.Unmarshal(m.Data, c) != nil {
				continue
			}
			out = append(out, &chatv1.ConversationSummary{
				ConversationId:   c.ConversationId,
				Title:            c.Title,
				Participants:     c.Participants[:min(len(c.Participants), summaryParticipants)],
				ParticipantCount: uint32(len(c.Participants)),
				LastSeq:          lastBy[c.ConversationId],
				Read:             readBy[user+"/"+c.ConversationId],
			})
		}
	}
	return out, lastEv, nil
}

// convOfReceipt returns <conv> of $KV.chat_receipts.<org>.<conv>.<user>.
func convOfReceipt(subject string) string {
	parts := strings.Split(subject, ".")
	if len(parts) < 2 {
		return ""
	}
	return parts[len(parts)-2]
}

func (s *Service) join(ctx context.Context, req *chatv1.JoinRequest) (*chatv1.JoinResponse, error) {
	p := req.Principal
	var f errs.Fields
	f.ID("conversationId", req.ConversationId)
	if err := f.Err(); err != nil {
		return nil, err
	}
	conv, _, err := s.getConv(ctx, p.Org, req.ConversationId)
	if err != nil {
		return nil, err
	}
	if !isParticipant(conv, p) {
		return nil, errNotParticipant
	}
	last, err := s.lastSeq(ctx, p.Org, conv.ConversationId)
	if err != nil {
		return nil, err
	}
	resp := &chatv1.JoinResponse{Conversation: conv, LastSeq: last}
	if resp.Receipts, err = s.receiptStates(ctx, p.Org, conv); err != nil {
		return nil, err
	}
	if resp.Typing, err = s.typingNow(ctx, p.Org, conv); err != nil {
		return nil, err
	}
	if req.SinceSeq != nil && *req.SinceSeq < last {
		// The rest of the reply is whole; missed gets what room is left.
		b := s.budget(proto.Size(resp) + joinFixedBytes)
		events, more, err := s.eventsAfter(ctx, p.Org, conv.ConversationId, *req.SinceSeq, 0, s.cfg.MissedLimit, b)
		if err != nil {
			return nil, err
		}
		if err := s.redactDeleted(ctx, p.Org, conv.ConversationId, events); err != nil {
			return nil, err
		}
		resp.Missed, resp.Truncated = events, more
		// Events appended since last was read are in missed too: the join
		// then starts live delivery after the newest of them.
		if n := len(events); n > 0 && !resp.Truncated && events[n-1].Seq > resp.LastSeq {
			resp.LastSeq = events[n-1].Seq
		}
	}
	return resp, nil
}

// receiptStates returns the markers of every participant who has any.
func (s *Service) receiptStates(ctx context.Context, org string, conv *chatv1.Conversation) ([]*chatv1.ReceiptState, error) {
	b, err := s.multiLast(ctx, names.KVStream(names.BucketReceipts),
		[]string{names.KVSubject(names.BucketReceipts, names.ReceiptKey(org, conv.ConversationId, "*"))}, 0)
	if err != nil {
		return nil, fmt.Errorf("load receipts: %w", err)
	}
	out := make([]*chatv1.ReceiptState, 0, len(b.Msgs))
	for _, m := range b.Msgs {
		r := &chatv1.ReceiptState{}
		if m.IsKVMarker() || proto.Unmarshal(m.Data, r) != nil || !slices.Contains(conv.Participants, r.UserId) {
			continue
		}
		out = append(out, r)
	}
	return out, nil
}
