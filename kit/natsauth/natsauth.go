// Package natsauth is Switchboard's NATS users and what each may publish
// and subscribe to, in one place: deploy/nats/accounts.conf is generated
// from it (a test keeps them equal) and the standalone's embedded server
// runs the same users with passwords made up at each start.
//
// Least privilege: an edge sends commands and reads events; each service
// answers its own commands and reaches only its own stream and buckets
// (never the JetStream API at large: no user but the admin may create,
// update or delete a stream, or purge one but chat_files' stream, whose
// files the edge and messaging remove chunk by chunk); a backend acts only in its own
// organization, on chat.sys subjects that edges may not publish to; and
// every user has an inbox prefix of its own (names.InboxPrefix) and may
// subscribe to no other inbox, so that nobody reads another's replies.
package natsauth

import (
	"crypto/rand"
	"encoding/hex"

	"github.com/switchboard-chat/switchboard/proto/names"
)

// Account is the NATS account every Switchboard user is in.
const Account = "SWITCHBOARD"

// The users other than backends.
const (
	Admin     = "admin" // sets JetStream up; may do anything
	Edge      = "edge"
	Messaging = names.Messaging
	Presence  = names.Presence
	RateLimit = names.RateLimit
)

// Connection types a user may be limited to (allowed_connection_types).
const (
	InProcess = "IN_PROCESS" // nats.InProcessServer, no socket
	Standard  = "STANDARD"   // a TCP client
)

// Backend is the user name of an organization's backends.
func Backend(org string) string { return "backend-" + org }

// User is one NATS user.
type User struct {
	Name     string
	Password string // plain, or a bcrypt hash ("$2a$...")
	// About says what the user is for (a comment in the configuration).
	About string
	// Publish and Subscribe allow these subjects and no other; both nil
	// allows everything (the admin).
	Publish, Subscribe []string
	// AllowResponses lets the user answer requests it received (one reply
	// to each reply subject), which is how services reach their callers'
	// inboxes without being allowed to publish to any inbox.
	AllowResponses bool
	// ConnectionTypes limits how the user may connect; empty: any way.
	ConnectionTypes []string
}

// Services are the users of Switchboard's own processes: the admin, the
// edge and the three services, each with password(name).
func Services(password func(user string) string) []User {
	users := []User{
		{Name: Admin, About: "sets up streams and buckets (the only user that may create, update, delete or purge them)"},
		{Name: Edge, About: "edges: send commands, receive events, store and serve files (chat_files only); no other JetStream, no chat.sys",
			Publish: concat([]string{
				names.CommandWildcard(names.Messaging, "*"),
				names.CommandWildcard(names.Presence, "*"),
				names.CommandWildcard(names.RateLimit, names.ActionCheck),
			}, filesAccess(names.ObjectSubjects(names.BucketFiles), false)),
			Subscribe: []string{names.ConvEvents("*", "*"), names.UserEvents("*", "*"), names.ActivityEvents("*", "*"), names.PresenceEvents("*", "*"), names.PresenceResync},
		},
		{Name: Messaging, About: "messaging: conversations, messages, reactions, receipts, typing",
			Publish: concat([]string{names.ConvEvents("*", "*"), names.UserEvents("*", "*"), names.ActivityEvents("*", "*"), names.StoreSubjects},
				streamAccess(names.StreamEvents),
				bucketAccess(names.BucketConversations), bucketAccess(names.BucketMemberships),
				bucketAccess(names.BucketMessages), bucketAccess(names.BucketReceipts), bucketAccess(names.BucketTyping),
				bucketAccess(names.BucketReactions),
				filesAccess(filesMeta, true)),
			Subscribe: concat([]string{
				names.CommandWildcard(names.Messaging, "*"),
				names.SystemCommandWildcard(names.Messaging, "*"),
			}, serviceDiscovery(names.Messaging)),
			AllowResponses: true,
		},
		{Name: Presence, About: "presence: connection states and statuses",
			Publish:        concat([]string{names.PresenceEvents("*", "*"), names.PresenceResync}, bucketAccess(names.BucketPresence)),
			Subscribe:      concat([]string{names.CommandWildcard(names.Presence, "*")}, serviceDiscovery(names.Presence)),
			AllowResponses: true,
		},
		{Name: RateLimit, About: "ratelimit: token buckets",
			Publish:        bucketAccess(names.BucketRateLimit),
			Subscribe:      concat([]string{names.CommandWildcard(names.RateLimit, names.ActionCheck)}, serviceDiscovery(names.RateLimit)),
			AllowResponses: true,
		},
	}
	for i := range users {
		u := &users[i]
		u.Password = password(u.Name)
		if u.Subscribe != nil {
			u.Subscribe = append(u.Subscribe, inbox(u.Name))
		}
	}
	return users
}

// BackendUser is the user of org's backends: it may send commands to
// messaging on chat.sys.messaging.<org>.* (as the organization or as one of
// its users) and nothing else.
func BackendUser(org, password string) User {
	name := Backend(org)
	return User{
		Name: name, Password: password,
		About:     "backends of org " + org + ": commands in that org only, as the organization or one of its users",
		Publish:   []string{names.SystemCommand(names.Messaging, org, "*")},
		Subscribe: []string{inbox(name)},
	}
}

// inbox is what a user may subscribe to for its replies.
func inbox(user string) string { return names.InboxPrefix(user) + ".>" }

// streamAccess is reading a stream: its info (the client's lookup) and
// direct gets. No other $JS.API subject.
func streamAccess(stream string) []string {
	return []string{
		"$JS.API.STREAM.INFO." + stream,
		"$JS.API.DIRECT.GET." + stream,
		"$JS.API.DIRECT.GET." + stream + ".>",
	}
}

// bucketAccess is using a KV bucket: reads, writes ($KV.<bucket>.>), and
// the ephemeral ordered consumers of watches and key listings, with their
// flow control.
func bucketAccess(bucket string) []string {
	stream := names.KVStream(bucket)
	return concat(streamAccess(stream), []string{
		names.KVSubject(bucket, ">"),
		"$JS.API.CONSUMER.CREATE." + stream + ".>",
		"$JS.API.CONSUMER.DELETE." + stream + ".>",
		"$JS.FC." + stream + ".>",
	})
}

// filesMeta is the metadata subjects of chat_files: messaging writes
// files' attached state and delete markers, never chunks.
var filesMeta = "$O." + names.BucketFiles + ".M.>"

// filesAccess is using the chat_files object store as kit/files does:
// direct gets of its stream (lookups, chunks, listings), publishing to
// subjects (the edge: chunks and metadata; messaging: metadata), and
// purging one file's chunks (a delete, an upload refused halfway), which
// the purge API allows for the whole stream: so only chat_files' stream,
// whose metadata these users may overwrite anyway. No consumer, and no
// stream info but for messaging (which opens the bucket: withInfo).
func filesAccess(subjects string, withInfo bool) []string {
	stream := names.ObjectStream(names.BucketFiles)
	out := []string{"$JS.API.DIRECT.GET." + stream, subjects, "$JS.API.STREAM.PURGE." + stream}
	if withInfo {
		out = append(out, "$JS.API.STREAM.INFO."+stream)
	}
	return out
}

// serviceDiscovery is what NATS micro subscribes to: $SRV.<verb>,
// $SRV.<verb>.<service> and $SRV.<verb>.<service>.<id>.
func serviceDiscovery(service string) []string {
	return []string{"$SRV.*", "$SRV.*." + service, "$SRV.*." + service + ".*"}
}

func concat(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// NewPassword returns a random password (32 hex characters).
func NewPassword() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
