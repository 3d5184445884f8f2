package messaging

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-chat/switchboard/kit/errs"
	"github.com/switchboard-chat/switchboard/kit/ids"
	"github.com/switchboard-chat/switchboard/kit/natsx"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// Reactions. A message's reactions are one chat_reactions value
// (<org>.<conv>.<message> -> chatv1.ReactionsState): every emoji on it with
// every user who reacted with it. One value per message makes a change one
// compare-and-set (two devices or two instances racing: one wins, the
// other rereads), keeps emoji out of subject tokens, and makes
// message:reactions for 100 messages one batched read (MultiLast). The
// value is bounded: at most maxEmojiPerMessage emoji and
// maxReactionsPerMessage (user, emoji) pairs per message (conflict beyond),
// so it holds at most reactionsValueBytes; counts and "me" are exact, and a
// reply shows at most reactionUsersShown users per emoji.
//
// Within one instance a striped lock serializes the reacts on one message
// (a popular message gets many at once: without it they would race each
// other into compare-and-set retries); across instances the
// compare-and-set decides.
//
// Order: the state first, then the event (like a delete). The state's CAS
// also records the change as pending; the message_reacted event is then
// appended with a JetStream message id made from the state's revision, and
// the pending change cleared. A failure in between leaves the change
// pending: the next react on that message (a retry of the same one, which
// then answers changed: true with the event's seq, or anyone's) appends it
// first, deduplicated by that id if the first append was stored after all.

const (
	maxEmojiBytes          = 64
	maxEmojiPerMessage     = 50
	maxReactionsPerMessage = 1000
	reactionUsersShown     = 20
	maxReactionMessages    = 100
	// reactionsValueBytes bounds a ReactionsState: its user ids and its
	// emoji (each with a tag and a length of at most 3 bytes), and the
	// pending change, with room for headers (about 70 KB).
	reactionsValueBytes = maxReactionsPerMessage*(4+ids.MaxLen) +
		maxEmojiPerMessage*(4+maxEmojiBytes+8) + 1<<10
)

var emojiReason = fmt.Sprintf("must be 1 to %d bytes of UTF-8 without whitespace or control characters", maxEmojiBytes)

// checkEmoji checks an emoji: 1 to maxEmojiBytes of UTF-8, no whitespace
// and no control characters (joiners and variation selectors are allowed:
// sequences such as 👩‍💻 need them).
func checkEmoji(f *errs.Fields, e string) {
	if e == "" || len(e) > maxEmojiBytes || !utf8.ValidString(e) {
		f.Add("emoji", emojiReason)
		return
	}
	for _, r := range e {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			f.Add("emoji", emojiReason)
			return
		}
	}
}

func (s *Service) react(ctx context.Context, req *chatv1.ReactRequest) (*chatv1.ReactResponse, error) {
	p := req.Principal
	if err := s.checkReact(ctx, req); err != nil {
		return nil, err
	}
	key := names.ReactionsKey(p.Org, req.ConversationId, req.MessageId)
	unlock, err := s.lockReactions(ctx, key)
	if err != nil {
		return nil, err
	}
	defer unlock()
	for range maxAppendAttempts {
		st, rev, err := s.reactionsState(ctx, key)
		if err != nil {
			return nil, err
		}
		if st.Pending != nil {
			mine := sameChange(st.Pending, p.User, req)
			seq, err := s.flushPending(ctx, p.Org, req.ConversationId, key, st, rev)
			if err != nil || mine {
				return &chatv1.ReactResponse{Changed: true, Seq: seq}, err
			}
			continue
		}
		changed, err := applyReaction(st, p.User, req.Emoji, req.On)
		if err != nil || !changed {
			return &chatv1.ReactResponse{}, err
		}
		st.Pending = &chatv1.MessageReacted{MessageId: req.MessageId, UserId: p.User, Emoji: req.Emoji, On: req.On, ReactedAtMs: s.cfg.Now().UnixMilli()}
		rev, err = s.putReactions(ctx, key, st, rev)
		if natsx.IsWrongLastSequence(err) || errors.Is(err, jetstream.ErrKeyExists) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("store reactions: %w", err)
		}
		seq, err := s.flushPending(ctx, p.Org, req.ConversationId, key, st, rev)
		if err != nil {
			return nil, err
		}
		return &chatv1.ReactResponse{Changed: true, Seq: seq}, nil
	}
	return nil, errs.New(errs.CodeConflict, "reactions changed concurrently; retry")
}

// checkReact validates a react and checks that the caller, a participant
// (not the system: a reaction is a user's), may react to a live message of
// the conversation.
func (s *Service) checkReact(ctx context.Context, req *chatv1.ReactRequest) error {
	var f errs.Fields
	f.ID("conversationId", req.ConversationId)
	f.ID("messageId", req.MessageId)
	checkEmoji(&f, req.Emoji)
	if err := f.Err(); err != nil {
		return err
	}
	p := req.Principal
	if err := s.ownAction(ctx, p, req.ConversationId); err != nil {
		return err
	}
	st, _, err := s.messageState(ctx, p.Org, req.ConversationId, req.MessageId)
	if err == nil && st.Deleted {
		err = errs.NotFound("message")
	}
	return err
}

func sameChange(m *chatv1.MessageReacted, user string, req *chatv1.ReactRequest) bool {
	return m.UserId == user && m.Emoji == req.Emoji && m.On == req.On && m.MessageId == req.MessageId
}

// applyReaction adds (on) or removes user's emoji in st and says whether
// that changed anything; past the bounds it is a conflict.
func applyReaction(st *chatv1.ReactionsState, user, emoji string, on bool) (bool, error) {
	i := slices.IndexFunc(st.Emoji, func(e *chatv1.EmojiUsers) bool { return e.Emoji == emoji })
	if !on {
		if i < 0 {
			return false, nil
		}
		e := st.Emoji[i]
		j := slices.Index(e.UserIds, user)
		if j < 0 {
			return false, nil
		}
		e.UserIds = slices.Delete(e.UserIds, j, j+1)
		if len(e.UserIds) == 0 {
			st.Emoji = slices.Delete(st.Emoji, i, i+1)
		}
		return true, nil
	}
	if i >= 0 && slices.Contains(st.Emoji[i].UserIds, user) {
		return false, nil
	}
	if reactionCount(st) >= maxReactionsPerMessage {
		return false, errs.New(errs.CodeConflict, "a message has at most %d reactions", maxReactionsPerMessage)
	}
	if i < 0 {
		if len(st.Emoji) >= maxEmojiPerMessage {
			return false, errs.New(errs.CodeConflict, "a message has at most %d distinct emoji", maxEmojiPerMessage)
		}
		st.Emoji = append(st.Emoji, &chatv1.EmojiUsers{Emoji: emoji})
		i = len(st.Emoji) - 1
	}
	st.Emoji[i].UserIds = append(st.Emoji[i].UserIds, user)
	return true, nil
}

func reactionCount(st *chatv1.ReactionsState) int {
	n := 0
	for _, e := range st.Emoji {
		n += len(e.UserIds)
	}
	return n
}

// flushPending appends st's pending change as a message_reacted event
// (once: its JetStream message id is the state's revision), then clears
// it from the state (rev), and returns the event's seq.
func (s *Service) flushPending(ctx context.Context, org, conv, key string, st *chatv1.ReactionsState, rev uint64) (uint64, error) {
	m := st.Pending
	ev := &chatv1.Event{ConversationId: conv, Body: &chatv1.Event_MessageReacted{MessageReacted: m}}
	// A delete marks the message before its event: no reaction is stored
	// after its message's deletion.
	res, err := s.appendEvent(ctx, org, conv, ev, reactDedupeID(key, rev), func(ctx context.Context, _ uint64) error {
		return s.checkNotDeleted(ctx, org, conv, m.MessageId)
	})
	if err != nil {
		return 0, err
	}
	if res.duplicate {
		// Stored by an attempt whose live publish may be lost.
		if stored, err := s.eventAt(ctx, org, conv, res.seq); err == nil && stored != nil {
			s.publishLive(org, conv, stored)
		}
	}
	st.Pending = nil
	if _, err := s.putReactions(ctx, key, st, rev); err != nil && !natsx.IsWrongLastSequence(err) {
		// Still pending: the next change appends it again, deduplicated.
		s.log.Warn("clear a pending reaction", "org", org, "err", err)
	}
	return res.seq, nil
}

// reactDedupeID is the JetStream message id of the event of the change
// that revision rev of a message's reactions made pending.
func reactDedupeID(key string, rev uint64) string {
	h := sha256.Sum256([]byte("react\x00" + key + "\x00" + strconv.FormatUint(rev, 10)))
	return hex.EncodeToString(h[:16])
}

// checkNotDeleted refuses a message marked deleted in chat_messages.
func (s *Service) checkNotDeleted(ctx context.Context, org, conv, msgID string) error {
	st, _, err := getProto[chatv1.MessageState](ctx, s.messages, names.MessageKey(org, conv, msgID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.Deleted {
		return errs.NotFound("message")
	}
	return nil
}

// reactionsState loads a message's reactions; none yet is an empty state,
// rev 0.
func (s *Service) reactionsState(ctx context.Context, key string) (*chatv1.ReactionsState, uint64, error) {
	st, rev, err := getProto[chatv1.ReactionsState](ctx, s.reacts, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return &chatv1.ReactionsState{}, 0, nil
	}
	return st, rev, err
}

// putReactions creates (rev 0) or updates a message's reactions with
// compare-and-set and returns the new revision.
func (s *Service) putReactions(ctx context.Context, key string, st *chatv1.ReactionsState, rev uint64) (uint64, error) {
	data, err := proto.Marshal(st)
	if err != nil {
		return 0, err
	}
	ctx, cancel := write(ctx)
	defer cancel()
	if rev == 0 {
		return s.reacts.Create(ctx, key, data)
	}
	return s.reacts.Update(ctx, key, data, rev)
}

// dropReactions removes a deleted message's reactions (reads skip deleted
// messages anyway: this only frees the space).
func (s *Service) dropReactions(ctx context.Context, org, conv, msgID string) {
	ctx, cancel := write(ctx)
	defer cancel()
	if err := s.reacts.Purge(ctx, names.ReactionsKey(org, conv, msgID)); err != nil {
		s.log.Warn("drop a deleted message's reactions", "org", org, "err", err)
	}
}
