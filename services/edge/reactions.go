package edge

import (
	"context"

	"github.com/switchboard-chat/switchboard/kit/errs"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// maxReactionMessages is how many messages one message:reactions names.
const maxReactionMessages = 100

// reactData is message:react's data; messaging checks the emoji itself
// (docs/protocol.md: 1 to 64 bytes, no whitespace or control characters).
type reactData struct {
	ConversationID string `json:"conversationId"`
	MessageID      string `json:"messageId"`
	Emoji          string `json:"emoji"`
	On             *bool  `json:"on"`
}

func (d *reactData) validate(f *errs.Fields) {
	f.ID("conversationId", d.ConversationID)
	f.ID("messageId", d.MessageID)
	f.Required("emoji", d.Emoji)
	if d.On == nil {
		f.Add("on", errs.ReasonRequired)
	}
}

// react adds or removes the caller's reaction; a change is the durable
// message:reacted event every member gets, the ack says whether anything
// changed and the event's seq.
func (c *conn) react(ctx context.Context, d *reactData) (any, error) {
	var resp chatv1.ReactResponse
	err := c.call(ctx, names.Messaging, names.ActionReact, &chatv1.ReactRequest{
		Principal: c.principal(), ConversationId: d.ConversationID, MessageId: d.MessageID, Emoji: d.Emoji, On: *d.On,
	}, &resp)
	if err != nil {
		return nil, err
	}
	return struct {
		Changed bool   `json:"changed"`
		Seq     uint64 `json:"seq,omitempty"`
	}{resp.Changed, resp.Seq}, nil
}

// reactionsData is message:reactions' data.
type reactionsData struct {
	ConversationID string   `json:"conversationId"`
	MessageIDs     []string `json:"messageIds"`
}

func (d *reactionsData) validate(f *errs.Fields) {
	f.ID("conversationId", d.ConversationID)
	if n := len(d.MessageIDs); n == 0 || n > maxReactionMessages {
		f.Add("messageIds", errs.ReasonRange(1, maxReactionMessages)+" ids")
		return
	}
	f.IDs("messageIds", d.MessageIDs)
}

type reactionJSON struct {
	MessageID string   `json:"messageId"`
	Emoji     string   `json:"emoji"`
	Count     uint32   `json:"count"`
	UserIDs   []string `json:"userIds"`
	Me        bool     `json:"me"`
}

// reactions answers the current reactions of the messages named.
func (c *conn) reactions(ctx context.Context, d *reactionsData) (any, error) {
	var resp chatv1.ReactionsResponse
	err := c.call(ctx, names.Messaging, names.ActionReactions, &chatv1.ReactionsRequest{
		Principal: c.principal(), ConversationId: d.ConversationID, MessageIds: d.MessageIDs,
	}, &resp)
	if err != nil {
		return nil, err
	}
	out := make([]reactionJSON, 0, len(resp.Reactions))
	for _, r := range resp.Reactions {
		out = append(out, reactionJSON{r.MessageId, r.Emoji, r.Count, nonNil(r.UserIds), r.Me})
	}
	return struct {
		Reactions []reactionJSON `json:"reactions"`
		Truncated bool           `json:"truncated,omitempty"`
	}{out, resp.Truncated}, nil
}
