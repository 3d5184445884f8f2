package edge

import (
	"encoding/json"
	"time"

	"github.com/switchboard-chat/switchboard/kit/errs"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
)

// The JSON of docs/protocol.md: every server frame is rendered here.
// Messaging sizes the pages of history and join's missed by this rendering
// of events (services/messaging/bounds.go): a field added here is counted
// there.

// timeLayout is RFC 3339 in UTC with milliseconds.
const timeLayout = "2006-01-02T15:04:05.000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func formatMs(ms int64) string { return formatTime(time.UnixMilli(ms)) }

type eventJSON struct {
	Type string `json:"type"`
	Data any    `json:"data,omitempty"`
}

type replyJSON struct {
	ID   string `json:"id,omitempty"`
	Type string `json:"type"`
	Data any    `json:"data,omitempty"`
}

type messageNewJSON struct {
	ConversationID string `json:"conversationId"`
	MessageID      string `json:"messageId"`
	Seq            uint64 `json:"seq"`
	PrevSeq        uint64 `json:"prevSeq"`
	SenderID       string `json:"senderId"`
	Content        string `json:"content"`
	ClientMsgID    string `json:"clientMsgId"`
	CreatedAt      string `json:"createdAt"`
	ReplyTo        string `json:"replyTo,omitempty"`
	// Attachments (section 7), absent when none.
	Attachments []attachmentJSON `json:"attachments,omitempty"`
}

type messageReactedJSON struct {
	ConversationID string `json:"conversationId"`
	MessageID      string `json:"messageId"`
	Seq            uint64 `json:"seq"`
	PrevSeq        uint64 `json:"prevSeq"`
	UserID         string `json:"userId"`
	Emoji          string `json:"emoji"`
	On             bool   `json:"on"`
	ReactedAt      string `json:"reactedAt"`
}

type attachmentJSON struct {
	FileID      string `json:"fileId"`
	Name        string `json:"name"`
	Size        uint64 `json:"size"`
	ContentType string `json:"contentType"`
}

func attachmentsOf(as []*chatv1.Attachment) []attachmentJSON {
	if len(as) == 0 {
		return nil
	}
	out := make([]attachmentJSON, len(as))
	for i, a := range as {
		out[i] = attachmentJSON{a.FileId, a.Name, a.Size, a.ContentType}
	}
	return out
}

type messageEditedJSON struct {
	ConversationID string `json:"conversationId"`
	MessageID      string `json:"messageId"`
	Seq            uint64 `json:"seq"`
	PrevSeq        uint64 `json:"prevSeq"`
	SenderID       string `json:"senderId"`
	Content        string `json:"content"`
	EditedAt       string `json:"editedAt"`
}

type messageDeletedJSON struct {
	ConversationID string `json:"conversationId"`
	MessageID      string `json:"messageId"`
	Seq            uint64 `json:"seq"`
	PrevSeq        uint64 `json:"prevSeq"`
	SenderID       string `json:"senderId"`
	DeletedAt      string `json:"deletedAt"`
}

type conversationUpdatedJSON struct {
	ConversationID string   `json:"conversationId"`
	Participants   []string `json:"participants"`
	Seq            uint64   `json:"seq"`
	PrevSeq        uint64   `json:"prevSeq"`
}

type activityJSON struct {
	ConversationID string `json:"conversationId"`
	LastSeq        uint64 `json:"lastSeq"`
	SenderID       string `json:"senderId"`
	Preview        string `json:"preview"`
	CreatedAt      string `json:"createdAt"`
}

type typingJSON struct {
	ConversationID string `json:"conversationId"`
	UserID         string `json:"userId"`
	IsTyping       bool   `json:"isTyping"`
}

type receiptJSON struct {
	ConversationID string `json:"conversationId"`
	UserID         string `json:"userId"`
	Delivered      uint64 `json:"delivered"`
	Read           uint64 `json:"read"`
}

type presenceJSON struct {
	UserID     string `json:"userId"`
	Status     string `json:"status"`
	LastSeenAt string `json:"lastSeenAt,omitempty"`
}

// renderEvent is an event as docs/protocol.md section 4 shows it; ok is false
// for an event with no body.
func renderEvent(ev *chatv1.Event) (eventJSON, bool) {
	switch b := ev.Body.(type) {
	case *chatv1.Event_MessageNew:
		m := b.MessageNew
		return eventJSON{"message:new", messageNewJSON{ev.ConversationId, m.MessageId, ev.Seq, ev.PrevSeq, m.SenderId, m.Content, m.ClientMsgId, formatMs(m.CreatedAtMs), m.ReplyTo, attachmentsOf(m.Attachments)}}, true
	case *chatv1.Event_MessageEdited:
		m := b.MessageEdited
		return eventJSON{"message:edited", messageEditedJSON{ev.ConversationId, m.MessageId, ev.Seq, ev.PrevSeq, m.SenderId, m.Content, formatMs(m.EditedAtMs)}}, true
	case *chatv1.Event_MessageReacted:
		m := b.MessageReacted
		return eventJSON{"message:reacted", messageReactedJSON{ev.ConversationId, m.MessageId, ev.Seq, ev.PrevSeq, m.UserId, m.Emoji, m.On, formatMs(m.ReactedAtMs)}}, true
	case *chatv1.Event_MessageDeleted:
		m := b.MessageDeleted
		return eventJSON{"message:deleted", messageDeletedJSON{ev.ConversationId, m.MessageId, ev.Seq, ev.PrevSeq, m.SenderId, formatMs(m.DeletedAtMs)}}, true
	case *chatv1.Event_ConversationUpdated:
		return eventJSON{"conversation:updated", conversationUpdatedJSON{ev.ConversationId, nonNil(b.ConversationUpdated.Participants), ev.Seq, ev.PrevSeq}}, true
	case *chatv1.Event_ConversationActivity:
		a := b.ConversationActivity
		return eventJSON{"conversation:activity", activityJSON{ev.ConversationId, a.LastSeq, a.SenderId, a.Preview, formatMs(a.CreatedAtMs)}}, true
	case *chatv1.Event_Typing:
		return eventJSON{"typing", typingJSON{ev.ConversationId, b.Typing.UserId, b.Typing.IsTyping}}, true
	case *chatv1.Event_Receipt:
		r := b.Receipt
		return eventJSON{"receipt", receiptJSON{ev.ConversationId, r.UserId, r.Delivered, r.Read}}, true
	case *chatv1.Event_Presence:
		return eventJSON{"presence", presenceOf(b.Presence)}, true
	}
	return eventJSON{}, false
}

func presenceOf(p *chatv1.Presence) presenceJSON {
	out := presenceJSON{UserID: p.UserId, Status: p.Status}
	if p.LastSeenAtMs > 0 {
		out.LastSeenAt = formatMs(p.LastSeenAtMs)
	}
	return out
}

func renderEvents(evs []*chatv1.Event) []eventJSON {
	out := make([]eventJSON, 0, len(evs))
	for _, ev := range evs {
		if e, ok := renderEvent(ev); ok {
			out = append(out, e)
		}
	}
	return out
}

// eventFrame renders ev once as a text frame, ready for any socket.
func eventFrame(ev *chatv1.Event) []byte {
	e, ok := renderEvent(ev)
	if !ok {
		return nil
	}
	return jsonFrame(e)
}

func jsonFrame(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own types get here: this is a bug, not a client's fault.
		panic(err)
	}
	return textFrame(b)
}

// Error replies.

type errorJSON struct {
	Code         string      `json:"code"`
	Message      string      `json:"message"`
	Fields       []fieldJSON `json:"fields,omitempty"`
	RetryAfterMs *int64      `json:"retryAfterMs,omitempty"`
}

type fieldJSON struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// errorReply renders err as the reply to command id; the frame type comes
// from the code (validation-error, rate-limit-exceeded or error).
func errorReply(id string, err *errs.Error) []byte {
	typ := "error"
	switch err.Code {
	case errs.CodeValidation:
		typ = "validation-error"
	case errs.CodeRateLimited:
		typ = "rate-limit-exceeded"
	}
	data := errorJSON{Code: err.Code, Message: err.Message}
	for _, f := range err.Fields {
		data.Fields = append(data.Fields, fieldJSON{f.Field, f.Reason})
	}
	if err.Code == errs.CodeRateLimited {
		ms := err.RetryAfter.Milliseconds()
		data.RetryAfterMs = &ms
	}
	return jsonFrame(replyJSON{ID: id, Type: typ, Data: data})
}

func ackFrame(id string, data any) []byte {
	return jsonFrame(replyJSON{ID: id, Type: "ack", Data: data})
}

// pongReply answers a ping command.
func pongReply(id string) []byte { return jsonFrame(replyJSON{ID: id, Type: "pong"}) }

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// lastMessageJSON is a list item's lastMessage. Messaging sizes list
// pages by it (services/messaging/bounds.go, lastMessageJSONFixed).
type lastMessageJSON struct {
	MessageID string `json:"messageId"`
	SenderID  string `json:"senderId"`
	Content   string `json:"content"`
	CreatedAt string `json:"createdAt"`
}

func lastMessageOf(m *chatv1.LastMessage) *lastMessageJSON {
	if m == nil {
		return nil
	}
	return &lastMessageJSON{m.MessageId, m.SenderId, m.Content, formatMs(m.CreatedAtMs)}
}
