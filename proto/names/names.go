// Package names holds every NATS subject, stream and bucket name of
// Switchboard's internal contract, so that no handler builds one by hand.
//
// Ids (orgs, users, conversations, connections) match the id pattern of
// docs/protocol.md, ^[A-Za-z0-9_-]{1,64}$, before they reach these
// functions, so each is exactly one safe subject token. docs/design.md has
// who publishes, subscribes and answers on each subject.
package names

import "strings"

// Services, which are also the queue groups their instances share.
const (
	Messaging = "messaging"
	Presence  = "presence"
	RateLimit = "ratelimit"
)

// Messaging actions: the last token of chat.cmd.messaging.<org>.<action>.
const (
	ActionCreate    = "create"
	ActionAdd       = "add"
	ActionRemove    = "remove"
	ActionList      = "list"
	ActionJoin      = "join"
	ActionHistory   = "history"
	ActionSend      = "send"
	ActionEdit      = "edit"
	ActionDelete    = "delete"
	ActionTyping    = "typing"
	ActionDelivered = "delivered"
	ActionRead      = "read"
	ActionReact     = "react"
	ActionReactions = "reactions"
	// ActionFile asks whether a principal may upload to and read the
	// files of a conversation (POST and GET /files at the edge).
	ActionFile = "file"
)

// Presence and ratelimit actions.
const (
	ActionUpdate = "update" // presence: connection states (published)
	ActionQuery  = "query"  // presence: statuses of users
	ActionCheck  = "check"  // ratelimit: take a token
)

// JetStream state, with the names operators look for.
const (
	StreamEvents        = "CHAT_EVENTS"
	BucketConversations = "chat_conversations"
	BucketMemberships   = "chat_memberships"
	BucketMessages      = "chat_messages"
	BucketReceipts      = "chat_receipts"
	BucketPresence      = "chat_presence"
	BucketRateLimit     = "chat_ratelimit"
	BucketTyping        = "chat_typing"
	BucketReactions     = "chat_reactions"
	// BucketFiles is the object store of uploaded files (a stream named
	// ObjectStream(BucketFiles) underneath).
	BucketFiles = "chat_files"
)

// StoreSubjects is the subject filter of the CHAT_EVENTS stream.
const StoreSubjects = "chat.store.>"

// Command is the subject of a command to service (Messaging, Presence or
// RateLimit) for org: chat.cmd.<service>.<org>.<action>.
func Command(service, org, action string) string {
	return join("chat.cmd", service, org, action)
}

// CommandWildcard is the subject a service endpoint subscribes to for one
// action of every org: chat.cmd.<service>.*.<action>.
func CommandWildcard(service, action string) string {
	return join("chat.cmd", service, "*", action)
}

// SystemCommand is the subject of a command that a backend of org sends:
// chat.sys.<service>.<org>.<action>. Only there may a command act as the
// organization itself (a system principal); edges cannot publish to it.
func SystemCommand(service, org, action string) string {
	return join("chat.sys", service, org, action)
}

// SystemCommandWildcard is SystemCommand's subject for one action of every
// org: chat.sys.<service>.*.<action>.
func SystemCommandWildcard(service, action string) string {
	return join("chat.sys", service, "*", action)
}

// CommandOrg returns the <org> token of a command subject, or "" when the
// subject is neither chat.cmd.<service>.<org>.<action> nor its chat.sys
// counterpart.
func CommandOrg(subject string) string {
	parts := strings.Split(subject, ".")
	if len(parts) != 5 || parts[0] != "chat" || (parts[1] != "cmd" && parts[1] != "sys") {
		return ""
	}
	return parts[3]
}

// IsSystemCommand reports whether subject is a chat.sys command subject.
func IsSystemCommand(subject string) bool {
	return strings.HasPrefix(subject, "chat.sys.") && CommandOrg(subject) != ""
}

// InboxPrefix is the inbox prefix of a NATS user (_INBOX_<user>): its
// replies arrive under it, and it may subscribe to no other inbox, so that
// no user reads another's replies (nats.CustomInboxPrefix).
func InboxPrefix(user string) string { return "_INBOX_" + user }

// ConvEvents is the subject of a conversation's live events.
func ConvEvents(org, conv string) string { return join("chat.evt.conv", org, conv) }

// ActivityEvents is the subject of a conversation's activity: one small
// ConversationActivity per new message, for the edges whose users are
// participants but did not join it (chat.evt.act.<org>.<conv>).
func ActivityEvents(org, conv string) string { return join("chat.evt.act", org, conv) }

// PresenceEvents is the subject of one user's status changes.
func PresenceEvents(org, user string) string { return join("chat.evt.presence", org, user) }

// PresenceResync is published by a presence instance that starts: every
// edge then reports all its live connections at once, rather than over a
// heartbeat interval, so that entries that expired while presence was
// down come back before anyone is announced offline. One token after
// "presence", it matches no PresenceEvents subject.
const PresenceResync = "chat.evt.presence.resync"

// UserEvents is the subject of events for every connection of one user.
func UserEvents(org, user string) string { return join("chat.evt.user", org, user) }

// Store is the CHAT_EVENTS subject that holds a conversation's durable events.
func Store(org, conv string) string { return join("chat.store", org, conv) }

// ConversationKey is the chat_conversations key of a conversation.
func ConversationKey(org, conv string) string { return org + "." + conv }

// MembershipKey is the chat_memberships key saying that user is a
// participant of conv; MembershipPrefix(org, user)+"*" lists them.
func MembershipKey(org, user, conv string) string { return org + "." + user + "." + conv }

// MembershipFilter matches every chat_memberships key of one user.
func MembershipFilter(org, user string) string { return org + "." + user + ".*" }

// MessageKey is the chat_messages key of one message.
func MessageKey(org, conv, msg string) string { return org + "." + conv + "." + msg }

// ReactionsKey is the chat_reactions key of one message's reactions (the
// emoji are in the value, so no emoji becomes a subject token).
func ReactionsKey(org, conv, msg string) string { return org + "." + conv + "." + msg }

// ReceiptKey is the chat_receipts key of one participant's markers.
func ReceiptKey(org, conv, user string) string { return org + "." + conv + "." + user }

// PresenceKey is the chat_presence key of one live connection.
func PresenceKey(org, user, conn string) string { return org + "." + user + "." + conn }

// LastSeenKey is the chat_presence key of a user's last-seen time; it has
// two tokens where connection keys have three.
func LastSeenKey(org, user string) string { return org + "." + user }

// TypingKey is the chat_typing key of a participant typing in a
// conversation (with a per-key TTL).
func TypingKey(org, conv, user string) string { return org + "." + conv + "." + user }

// RateLimitKey is the chat_ratelimit key of one user's bucket for a command;
// the command's ':' becomes '_' so that the key stays a valid KV key.
func RateLimitKey(org, user, command string) string {
	return org + "." + user + "." + strings.ReplaceAll(command, ":", "_")
}

// FileObject is the chat_files object name of a file: the fileId within
// its organization. The conversation, uploader and the rest are in the
// object's metadata (kit/files).
func FileObject(org, fileID string) string { return org + "." + fileID }

// ObjectStream is the stream behind an object store bucket.
func ObjectStream(bucket string) string { return "OBJ_" + bucket }

// ObjectSubjects is every subject of an object store bucket: its chunks
// ($O.<bucket>.C.<nuid>) and metadata ($O.<bucket>.M.<base64 name>).
func ObjectSubjects(bucket string) string { return "$O." + bucket + ".>" }

// KVSubject is the stream subject behind a KV key ($KV.<bucket>.<key>).
func KVSubject(bucket, key string) string { return "$KV." + bucket + "." + key }

// KVStream is the stream behind a KV bucket.
func KVStream(bucket string) string { return "KV_" + bucket }

func join(prefix string, tokens ...string) string {
	n := len(prefix)
	for _, t := range tokens {
		n += 1 + len(t)
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteString(prefix)
	for _, t := range tokens {
		b.WriteByte('.')
		b.WriteString(t)
	}
	return b.String()
}
