package messaging

import (
	"context"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/switchboard-chat/switchboard/kit/errs"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// reactionJSONFixed bounds a reaction's JSON besides its strings (field
// names, count, me, separators); reactionsFixedBytes the reply's other
// fields in protobuf.
const (
	reactionJSONFixed   = 64
	reactionsFixedBytes = 8
)

// reactions answers the current reactions of up to 100 messages of a
// conversation, in the order asked: two batched reads (the reactions, and
// the messages' deleted marks), whatever the number of messages. Ids that
// are no message of this conversation (of another conversation or org, or
// none) have no reactions there, so they are simply absent, like messages
// without reactions or deleted ones.
func (s *Service) reactions(ctx context.Context, req *chatv1.ReactionsRequest) (*chatv1.ReactionsResponse, error) {
	p := req.Principal
	msgIDs, err := checkReactionsRequest(req)
	if err != nil {
		return nil, err
	}
	if _, err := s.memberConv(ctx, p, req.ConversationId); err != nil {
		return nil, err
	}
	states, err := s.readReactions(ctx, p.Org, req.ConversationId, msgIDs)
	if err != nil || len(states) == 0 {
		return &chatv1.ReactionsResponse{}, err
	}
	deleted, err := s.deletedMessages(ctx, p.Org, req.ConversationId, msgIDs)
	if err != nil {
		return nil, err
	}
	var per [][]*chatv1.Reaction
	for _, id := range msgIDs {
		if st := states[id]; st != nil && !deleted[id] {
			per = append(per, reactionsOf(id, st, p))
		}
	}
	out, truncated := s.fitReactions(per)
	return &chatv1.ReactionsResponse{Reactions: out, Truncated: truncated}, nil
}

// checkReactionsRequest validates the ids (1 to 100) and returns them
// without repeats.
func checkReactionsRequest(req *chatv1.ReactionsRequest) ([]string, error) {
	var f errs.Fields
	f.ID("conversationId", req.ConversationId)
	if n := len(req.MessageIds); n == 0 || n > maxReactionMessages {
		f.Add("messageIds", errs.ReasonRange(1, maxReactionMessages)+" ids")
	}
	if err := f.Err(); err != nil {
		return nil, err
	}
	out := userList(&f, "messageIds", req.MessageIds)
	return out, f.Err()
}

// readReactions reads the reactions of msgIDs in one request (at most 100
// subjects, each one key).
func (s *Service) readReactions(ctx context.Context, org, conv string, msgIDs []string) (map[string]*chatv1.ReactionsState, error) {
	subjects := make([]string, len(msgIDs))
	for i, id := range msgIDs {
		subjects[i] = names.KVSubject(names.BucketReactions, names.ReactionsKey(org, conv, id))
	}
	b, err := s.multiLast(ctx, names.KVStream(names.BucketReactions), subjects, 0)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*chatv1.ReactionsState, len(b.Msgs))
	for _, m := range b.Msgs {
		st := &chatv1.ReactionsState{}
		if m.IsKVMarker() || proto.Unmarshal(m.Data, st) != nil || len(st.Emoji) == 0 {
			continue
		}
		out[lastToken(m.Subject)] = st
	}
	return out, nil
}

// deletedMessages says which of msgIDs are marked deleted, in one request.
func (s *Service) deletedMessages(ctx context.Context, org, conv string, msgIDs []string) (map[string]bool, error) {
	subjects := make([]string, len(msgIDs))
	for i, id := range msgIDs {
		subjects[i] = names.KVSubject(names.BucketMessages, names.MessageKey(org, conv, id))
	}
	b, err := s.multiLast(ctx, names.KVStream(names.BucketMessages), subjects, 0)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, m := range b.Msgs {
		st := &chatv1.MessageState{}
		if !m.IsKVMarker() && proto.Unmarshal(m.Data, st) == nil && st.Deleted {
			out[lastToken(m.Subject)] = true
		}
	}
	return out, nil
}

// reactionsOf is one message's reactions as p sees them, with every user
// (fitReactions cuts the lists).
func reactionsOf(msgID string, st *chatv1.ReactionsState, p *chatv1.Principal) []*chatv1.Reaction {
	out := make([]*chatv1.Reaction, 0, len(st.Emoji))
	for _, e := range st.Emoji {
		out = append(out, &chatv1.Reaction{
			MessageId: msgID, Emoji: e.Emoji, Count: uint32(len(e.UserIds)), UserIds: e.UserIds,
			Me: !p.System && slices.Contains(e.UserIds, p.User),
		})
	}
	return out
}

// fitReactions cuts every reaction's users to reactionUsersShown, or fewer
// when the reply would not fit otherwise (counts and me stay exact), and
// when even none would not do, ends the reply before the first message
// that does not fit (truncated).
func (s *Service) fitReactions(per [][]*chatv1.Reaction) ([]*chatv1.Reaction, bool) {
	wire, json := s.wireLimit()-reactionsFixedBytes, s.cfg.ReplyBytes
	for k := reactionUsersShown; k >= 0; k-- {
		if w, j := reactionsSize(per, k); w <= wire && j <= json {
			return flatten(per, k), false
		}
	}
	var out []*chatv1.Reaction
	for i, rs := range per {
		w, j := reactionsSize(per[i:i+1], 0)
		if i > 0 && (w > wire || j > json) {
			return out, true
		}
		wire, json = wire-w, json-j
		out = append(out, flatten([][]*chatv1.Reaction{rs}, 0)...)
	}
	return out, false
}

// reactionsSize measures the reactions with at most k users each, as
// protobuf and as the edge's JSON.
func reactionsSize(per [][]*chatv1.Reaction, k int) (wire, json int) {
	for _, rs := range per {
		for _, r := range rs {
			users := r.UserIds[:min(k, len(r.UserIds))]
			cut := &chatv1.Reaction{MessageId: r.MessageId, Emoji: r.Emoji, Count: r.Count, UserIds: users, Me: r.Me}
			wire += itemSize(proto.Size(cut))
			json += reactionJSONFixed + jsonStringSize(r.MessageId) + jsonStringSize(r.Emoji) + stringsJSONSize(users)
		}
	}
	return wire, json
}

func flatten(per [][]*chatv1.Reaction, k int) []*chatv1.Reaction {
	var out []*chatv1.Reaction
	for _, rs := range per {
		for _, r := range rs {
			r.UserIds = r.UserIds[:min(k, len(r.UserIds))]
			out = append(out, r)
		}
	}
	return out
}
