package edge

import (
	"context"

	"github.com/switchboard-chat/switchboard/kit/errs"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

type sendData struct {
	ConversationID string `json:"conversationId"`
	Content        string `json:"content"`
	ClientMsgID    string `json:"clientMsgId"`
	ReplyTo        string `json:"replyTo"`
	// Attachments are fileIds of uploads (section 7).
	Attachments []string `json:"attachments"`
}

// maxFileAttachments bounds a message's attachments (messaging checks again).
const maxFileAttachments = 10

func (d *sendData) validate(f *errs.Fields) {
	f.ID("conversationId", d.ConversationID)
	if len(d.Attachments) == 0 {
		f.Required("content", d.Content) // may be empty with attachments
	}
	f.Required("clientMsgId", d.ClientMsgID)
	if d.ReplyTo != "" {
		f.ID("replyTo", d.ReplyTo)
	}
	if len(d.Attachments) > maxFileAttachments {
		f.Add("attachments", "at most 10 fileIds")
	} else {
		f.IDs("attachments", d.Attachments)
	}
}

func (c *conn) sendMessage(ctx context.Context, d *sendData) (any, error) {
	var resp chatv1.SendResponse
	err := c.call(ctx, names.Messaging, names.ActionSend, &chatv1.SendRequest{
		Principal: c.principal(), ConversationId: d.ConversationID, Content: d.Content, ClientMsgId: d.ClientMsgID,
		ReplyTo: d.ReplyTo, Attachments: d.Attachments,
	}, &resp)
	if err != nil {
		return nil, err
	}
	return struct {
		MessageID string `json:"messageId"`
		Seq       uint64 `json:"seq"`
		CreatedAt string `json:"createdAt"`
		Duplicate bool   `json:"duplicate"`
	}{resp.MessageId, resp.Seq, formatMs(resp.CreatedAtMs), resp.Duplicate}, nil
}

type editData struct {
	ConversationID string `json:"conversationId"`
	MessageID      string `json:"messageId"`
	Content        string `json:"content"`
}

func (d *editData) validate(f *errs.Fields) {
	f.ID("conversationId", d.ConversationID)
	f.ID("messageId", d.MessageID)
	f.Required("content", d.Content)
}

func (c *conn) editMessage(ctx context.Context, d *editData) (any, error) {
	var resp chatv1.EditResponse
	err := c.call(ctx, names.Messaging, names.ActionEdit, &chatv1.EditRequest{
		Principal: c.principal(), ConversationId: d.ConversationID, MessageId: d.MessageID, Content: d.Content,
	}, &resp)
	if err != nil {
		return nil, err
	}
	return struct {
		Seq      uint64 `json:"seq"`
		EditedAt string `json:"editedAt"`
	}{resp.Seq, formatMs(resp.EditedAtMs)}, nil
}

type deleteData struct {
	ConversationID string `json:"conversationId"`
	MessageID      string `json:"messageId"`
}

func (d *deleteData) validate(f *errs.Fields) {
	f.ID("conversationId", d.ConversationID)
	f.ID("messageId", d.MessageID)
}

func (c *conn) deleteMessage(ctx context.Context, d *deleteData) (any, error) {
	var resp chatv1.DeleteResponse
	err := c.call(ctx, names.Messaging, names.ActionDelete, &chatv1.DeleteRequest{
		Principal: c.principal(), ConversationId: d.ConversationID, MessageId: d.MessageID,
	}, &resp)
	if err != nil {
		return nil, err
	}
	return struct {
		Seq       uint64 `json:"seq"`
		DeletedAt string `json:"deletedAt"`
	}{resp.Seq, formatMs(resp.DeletedAtMs)}, nil
}

type typingData struct {
	ConversationID string `json:"conversationId"`
	IsTyping       *bool  `json:"isTyping"`
}

func (d *typingData) validate(f *errs.Fields) {
	f.ID("conversationId", d.ConversationID)
	if d.IsTyping == nil {
		f.Add("isTyping", errs.ReasonRequired)
	}
}

func (c *conn) typing(ctx context.Context, d *typingData) (any, error) {
	err := c.call(ctx, names.Messaging, names.ActionTyping, &chatv1.TypingRequest{
		Principal: c.principal(), ConversationId: d.ConversationID, IsTyping: *d.IsTyping,
	}, &chatv1.TypingResponse{})
	if err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

type markData struct {
	ConversationID string  `json:"conversationId"`
	Seq            *uint64 `json:"seq"`
}

func (d *markData) validate(f *errs.Fields) {
	f.ID("conversationId", d.ConversationID)
	if d.Seq == nil {
		f.Add("seq", errs.ReasonRequired)
	}
}

func (c *conn) delivered(ctx context.Context, d *markData) (any, error) {
	return c.mark(ctx, d, names.ActionDelivered)
}

func (c *conn) read(ctx context.Context, d *markData) (any, error) {
	return c.mark(ctx, d, names.ActionRead)
}

func (c *conn) mark(ctx context.Context, d *markData, action string) (any, error) {
	err := c.call(ctx, names.Messaging, action, &chatv1.MarkRequest{
		Principal: c.principal(), ConversationId: d.ConversationID, Seq: *d.Seq,
	}, &chatv1.MarkResponse{})
	if err != nil {
		return nil, err
	}
	return struct{}{}, nil
}
