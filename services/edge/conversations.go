package edge

import (
	"context"

	"github.com/switchboard-chat/switchboard/kit/errs"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

type createData struct {
	Participants []string `json:"participants"`
	Title        string   `json:"title"`
}

func (d *createData) validate(f *errs.Fields) { idList(f, "participants", d.Participants, true) }

func (c *conn) createConversation(ctx context.Context, d *createData) (any, error) {
	var resp chatv1.CreateConversationResponse
	err := c.call(ctx, names.Messaging, names.ActionCreate, &chatv1.CreateConversationRequest{
		Principal: c.principal(), Participants: d.Participants, Title: d.Title,
	}, &resp)
	if err != nil {
		return nil, err
	}
	return struct {
		ConversationID string   `json:"conversationId"`
		Participants   []string `json:"participants"`
	}{resp.ConversationId, nonNil(resp.Participants)}, nil
}

type participantsAck struct {
	Participants []string `json:"participants"`
}

type addData struct {
	ConversationID string   `json:"conversationId"`
	UserIDs        []string `json:"userIds"`
}

func (d *addData) validate(f *errs.Fields) {
	f.ID("conversationId", d.ConversationID)
	idList(f, "userIds", d.UserIDs, false)
}

func (c *conn) addParticipants(ctx context.Context, d *addData) (any, error) {
	var resp chatv1.ParticipantsResponse
	err := c.call(ctx, names.Messaging, names.ActionAdd, &chatv1.AddParticipantsRequest{
		Principal: c.principal(), ConversationId: d.ConversationID, UserIds: d.UserIDs,
	}, &resp)
	if err != nil {
		return nil, err
	}
	return participantsAck{nonNil(resp.Participants)}, nil
}

type removeData struct {
	ConversationID string `json:"conversationId"`
	UserID         string `json:"userId"`
}

func (d *removeData) validate(f *errs.Fields) {
	f.ID("conversationId", d.ConversationID)
	f.ID("userId", d.UserID)
}

func (c *conn) removeParticipant(ctx context.Context, d *removeData) (any, error) {
	var resp chatv1.ParticipantsResponse
	err := c.call(ctx, names.Messaging, names.ActionRemove, &chatv1.RemoveParticipantRequest{
		Principal: c.principal(), ConversationId: d.ConversationID, UserId: d.UserID,
	}, &resp)
	if err != nil {
		return nil, err
	}
	return participantsAck{nonNil(resp.Participants)}, nil
}

type listData struct {
	Limit  *int   `json:"limit"`
	Cursor string `json:"cursor"`
}

func (d *listData) validate(f *errs.Fields) { checkLimit(f, d.Limit) }

// summaryJSON is a list item. Messaging sizes list pages by this rendering
// (services/messaging/bounds.go): a field added here is counted there.
type summaryJSON struct {
	ConversationID   string           `json:"conversationId"`
	Title            string           `json:"title"`
	Participants     []string         `json:"participants"`
	ParticipantCount uint32           `json:"participantCount"`
	LastSeq          uint64           `json:"lastSeq"`
	Read             uint64           `json:"read"`
	Unread           uint32           `json:"unread"`
	LastMessage      *lastMessageJSON `json:"lastMessage,omitempty"`
}

func (c *conn) listConversations(ctx context.Context, d *listData) (any, error) {
	var resp chatv1.ListConversationsResponse
	err := c.call(ctx, names.Messaging, names.ActionList, &chatv1.ListConversationsRequest{
		Principal: c.principal(), Limit: pageSize(d.Limit), Cursor: d.Cursor,
	}, &resp)
	if err != nil {
		return nil, err
	}
	out := struct {
		Conversations []summaryJSON `json:"conversations"`
		Cursor        string        `json:"cursor,omitempty"`
	}{Conversations: make([]summaryJSON, 0, len(resp.Conversations)), Cursor: resp.Cursor}
	for _, s := range resp.Conversations {
		out.Conversations = append(out.Conversations, summaryJSON{s.ConversationId, s.Title, nonNil(s.Participants), s.ParticipantCount, s.LastSeq, s.Read, s.Unread, lastMessageOf(s.LastMessage)})
	}
	return out, nil
}

type joinData struct {
	ConversationID string  `json:"conversationId"`
	SinceSeq       *uint64 `json:"sinceSeq"`
}

func (d *joinData) validate(f *errs.Fields) { f.ID("conversationId", d.ConversationID) }

type conversationJSON struct {
	ConversationID string   `json:"conversationId"`
	Title          string   `json:"title"`
	Participants   []string `json:"participants"`
	CreatedBy      string   `json:"createdBy"`
}

type receiptStateJSON struct {
	UserID    string `json:"userId"`
	Delivered uint64 `json:"delivered"`
	Read      uint64 `json:"read"`
}

type joinAck struct {
	Conversation conversationJSON   `json:"conversation"`
	LastSeq      uint64             `json:"lastSeq"`
	Receipts     []receiptStateJSON `json:"receipts"`
	Presence     []presenceJSON     `json:"presence"`
	Typing       []string           `json:"typing"`
	Missed       []eventJSON        `json:"missed"`
	Truncated    bool               `json:"truncated"`
}

// join starts live events for a conversation on this connection. The room
// is entered (and subscribed) before messaging is asked, so that no event
// falls between the reply's lastSeq and the first live one.
func (c *conn) join(ctx context.Context, cmd command) (any, error) {
	d, err := decodeValid[joinData](cmd.Data, true)
	if err != nil {
		return nil, err
	}
	conv := d.ConversationID
	counted, ok := c.joinSlot(conv)
	if !ok {
		return nil, errs.New(errs.CodeConflict, "at most %d conversations joined per connection: leave one first", c.s.cfg.MaxJoinsPerConnection)
	}
	r, err := c.s.hub.acquire(c, conv)
	if err != nil {
		c.joinEnded(conv, nil, counted)
		return nil, err
	}
	var resp chatv1.JoinResponse
	err = c.call(ctx, names.Messaging, names.ActionJoin, &chatv1.JoinRequest{
		Principal: c.principal(), ConversationId: conv, SinceSeq: d.SinceSeq,
	}, &resp)
	if err != nil {
		c.s.hub.release(c, r)
		c.joinFailed(conv, r, counted)
		return nil, err
	}
	if old := c.joinEnded(conv, r, counted); old != nil && old != r {
		c.s.hub.release(c, old)
	}
	var ack []byte
	if cmd.ID != "" {
		a := c.joinAck(&resp)
		a.Presence = c.participantsPresence(resp.Conversation.GetParticipants())
		ack = ackFrame(cmd.ID, a)
	}
	if r.ready(c, resp.LastSeq, resp.Conversation.GetParticipants(), ack) {
		c.s.hub.dropIfEmpty(r)
	}
	r.syncPresence()
	return nil, errReplied
}

// joinSlot takes a place among the conversations c has joined for a join
// of conv, which counted says to give back with joinEnded; ok is false at
// MaxJoinsPerConnection, counting the joins in flight. Joins of one
// conversation run one at a time (its lane), those of others meanwhile.
func (c *conn) joinSlot(conv string) (counted, ok bool) {
	c.cmu.Lock()
	defer c.cmu.Unlock()
	if c.rooms[conv] != nil {
		return false, true
	}
	if !c.mayJoinAnother() {
		return false, false
	}
	c.joining++
	return true, true
}

// joinEnded records the end of a join of conv: r is its room (nil when
// the join failed before it had one); it returns the room c was in before.
func (c *conn) joinEnded(conv string, r *room, counted bool) (old *room) {
	c.cmu.Lock()
	defer c.cmu.Unlock()
	if counted {
		c.joining--
	}
	old = c.rooms[conv]
	if r != nil {
		c.rooms[conv] = r
	}
	return old
}

// joinFailed records a join of conv that failed after it entered r (and
// was taken out again): c is no longer in r.
func (c *conn) joinFailed(conv string, r *room, counted bool) {
	c.cmu.Lock()
	defer c.cmu.Unlock()
	if counted {
		c.joining--
	}
	if c.rooms[conv] == r {
		delete(c.rooms, conv)
	}
}

// mayJoinAnother reports whether c is under MaxJoinsPerConnection. At the
// cap it first forgets the rooms a membership change took it out of: those
// no longer count, and the client need not leave them. Called with cmu
// held.
func (c *conn) mayJoinAnother() bool {
	limit := c.s.cfg.MaxJoinsPerConnection
	if len(c.rooms)+int(c.joining) < limit {
		return true
	}
	for id, r := range c.rooms {
		if !r.has(c) {
			delete(c.rooms, id)
		}
	}
	return len(c.rooms)+int(c.joining) < limit
}

func (c *conn) joinAck(resp *chatv1.JoinResponse) joinAck {
	conv := resp.Conversation
	ack := joinAck{
		Conversation: conversationJSON{conv.GetConversationId(), conv.GetTitle(), nonNil(conv.GetParticipants()), conv.GetCreatedBy()},
		LastSeq:      resp.LastSeq,
		Receipts:     make([]receiptStateJSON, 0, len(resp.Receipts)),
		Presence:     []presenceJSON{},
		Typing:       nonNil(resp.Typing),
		Missed:       renderEvents(resp.Missed),
		Truncated:    resp.Truncated,
	}
	for _, r := range resp.Receipts {
		ack.Receipts = append(ack.Receipts, receiptStateJSON{r.UserId, r.Delivered, r.Read})
	}
	return ack
}

type convData struct {
	ConversationID string `json:"conversationId"`
}

func (d *convData) validate(f *errs.Fields) { f.ID("conversationId", d.ConversationID) }

func (c *conn) leave(_ context.Context, d *convData) (any, error) {
	c.cmu.Lock()
	r := c.rooms[d.ConversationID]
	delete(c.rooms, d.ConversationID)
	c.cmu.Unlock()
	if r != nil {
		c.s.hub.release(c, r)
	}
	return struct{}{}, nil
}

// leaveAll takes a closing connection out of every room; its commands
// have stopped (stopCommands).
func (c *conn) leaveAll() {
	c.cmu.Lock()
	rooms := c.rooms
	c.rooms = map[string]*room{}
	c.cmu.Unlock()
	for _, r := range rooms {
		c.s.hub.release(c, r)
	}
}

type historyData struct {
	ConversationID string  `json:"conversationId"`
	BeforeSeq      *uint64 `json:"beforeSeq"`
	AfterSeq       *uint64 `json:"afterSeq"`
	Limit          *int    `json:"limit"`
}

func (d *historyData) validate(f *errs.Fields) {
	f.ID("conversationId", d.ConversationID)
	checkLimit(f, d.Limit)
}

func (c *conn) history(ctx context.Context, d *historyData) (any, error) {
	var resp chatv1.HistoryResponse
	err := c.call(ctx, names.Messaging, names.ActionHistory, &chatv1.HistoryRequest{
		Principal: c.principal(), ConversationId: d.ConversationID, BeforeSeq: d.BeforeSeq, AfterSeq: d.AfterSeq, Limit: pageSize(d.Limit),
	}, &resp)
	if err != nil {
		return nil, err
	}
	return struct {
		Events  []eventJSON `json:"events"`
		HasMore bool        `json:"hasMore"`
	}{renderEvents(resp.Events), resp.HasMore}, nil
}
