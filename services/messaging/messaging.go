// Package messaging is the authority on conversations, membership, messages,
// edits, deletes, reactions and receipts.
//
// It answers commands on chat.cmd.messaging.<org>.<action> (queue group
// "messaging"), enforces tenancy and ownership, appends every durable event
// of a conversation to the CHAT_EVENTS stream on chat.store.<org>.<conv> and
// publishes it on chat.evt.conv.<org>.<conv>; a new message also gets a
// small ConversationActivity on chat.evt.act.<org>.<conv> for the
// participants who did not join (tally.go). Stored events carry a tally
// (tally.go) from which a list finds unread counts and last messages
// (inbox.go).
//
// Order: an append carries the expected last sequence of the conversation's
// subject, so that two instances cannot interleave one conversation; the
// stream sequence is the event's seq and the expected one its prevSeq. Within
// one instance appends to a conversation are also serialized by a striped
// lock, so that they do not race each other into retries.
//
// State:
//   - CHAT_EVENTS: durable events (chatv1.Event with seq 0: the stream
//     sequence is the seq).
//   - chat_conversations: <org>.<conv> -> chatv1.Conversation.
//   - chat_memberships: <org>.<user>.<conv> -> empty; the user's index.
//   - chat_messages: <org>.<conv>.<message> -> chatv1.MessageState of an
//     edited or deleted message (and of messages stored before ids were made
//     from seqs), for edit and delete checks; expires with the stream's
//     retention. A message's id leads to its event (msgid.go): a send writes
//     only the stream.
//
// The send path: one stream append, with the membership check against a
// record cached per instance that is trusted only at the last seq it was
// known to hold (convcache.go), and the live publish.
//   - chat_receipts: <org>.<conv>.<user> -> chatv1.ReceiptState.
//   - chat_reactions: <org>.<conv>.<message> -> chatv1.ReactionsState, a
//     message's reactions (reactions.go); expires with the retention.
package messaging

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-chat/switchboard/kit/files"
	"github.com/switchboard-chat/switchboard/kit/ids"
	"github.com/switchboard-chat/switchboard/kit/natsx"
	"github.com/switchboard-chat/switchboard/kit/svc"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// Config configures a Service; the zero value of each field is its default.
type Config struct {
	// Replicas of the stream and buckets. Default 1.
	Replicas int
	// Retention of durable events. Default DefaultRetention.
	Retention time.Duration
	// StreamMaxBytes bounds CHAT_EVENTS (on each replica): past it the
	// oldest events go, as they do past Retention. chat_messages, which
	// holds a smaller entry per message for as long, has the same bound.
	// Negative: no bound. Default DefaultStreamMaxBytes (2 GiB).
	StreamMaxBytes int64
	// BucketMaxBytes bounds each of chat_conversations, chat_memberships,
	// chat_receipts, chat_reactions and chat_typing: a full bucket refuses new entries
	// (new conversations, memberships, markers). Negative: no bound.
	// Default DefaultBucketMaxBytes (256 MiB).
	BucketMaxBytes int64
	// FilesMaxBytes bounds the chat_files object store (on each replica):
	// a full bucket refuses uploads (503). JetStream reserves it. Negative:
	// no bound. Default files.DefaultBucketMaxBytes (1 GiB).
	FilesMaxBytes int64
	// FileUnattachedTTL is how long an upload may wait to be attached to
	// a message; the sweeper removes it after. Default
	// files.DefaultUnattachedTTL (24 h).
	FileUnattachedTTL time.Duration
	// FileSweepInterval is how often each instance sweeps chat_files for
	// uploads never attached. Default DefaultFileSweepInterval.
	FileSweepInterval time.Duration
	// DedupeWindow is how long a clientMsgId is remembered. Default 10 min.
	DedupeWindow time.Duration
	// MaxContentBytes bounds a message's content. Default
	// DefaultMaxContentBytes.
	MaxContentBytes int
	// MaxParticipants bounds a conversation. Default 1000.
	MaxParticipants int
	// MissedLimit bounds the missed events of a join. Default 500.
	MissedLimit int
	// ReplyBytes bounds the JSON the edge renders of a page's items (list,
	// history, join's missed), escaping counted, so that a reply frame
	// fits a socket's send queue with room to spare. Replies on NATS are
	// bounded by the connection's max payload as well. Default 512 KiB.
	ReplyBytes int
	// TypingTTL is how long isTyping true lasts without a renewal; whole
	// seconds. Default 6s.
	TypingTTL time.Duration
	// Workers bounds the commands handled at once. Default 256.
	Workers int
	// Registerer gets the metrics. Default: not exported.
	Registerer prometheus.Registerer
	// Logger. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Defaults of the Config fields that a flag shows too. The size limits'
// reasoning is in README.md, "Configuration".
const (
	DefaultRetention       = 7 * 24 * time.Hour
	DefaultMaxContentBytes = 4096
	DefaultStreamMaxBytes  = int64(2 << 30)
	DefaultBucketMaxBytes  = int64(256 << 20)
	// DefaultFileSweepInterval: a sweep reads every file's metadata, a
	// few hundred bytes each, in batches.
	DefaultFileSweepInterval = 5 * time.Minute
)

func (c *Config) setDefaults() {
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.Retention <= 0 {
		c.Retention = DefaultRetention
	}
	if c.StreamMaxBytes == 0 {
		c.StreamMaxBytes = DefaultStreamMaxBytes
	}
	if c.BucketMaxBytes == 0 {
		c.BucketMaxBytes = DefaultBucketMaxBytes
	}
	if c.FilesMaxBytes == 0 {
		c.FilesMaxBytes = files.DefaultBucketMaxBytes
	}
	if c.FileUnattachedTTL <= 0 {
		c.FileUnattachedTTL = files.DefaultUnattachedTTL
	}
	if c.FileSweepInterval <= 0 {
		c.FileSweepInterval = DefaultFileSweepInterval
	}
	if c.DedupeWindow <= 0 {
		c.DedupeWindow = 10 * time.Minute
	}
	if c.MaxContentBytes <= 0 {
		c.MaxContentBytes = DefaultMaxContentBytes
	}
	if c.MaxParticipants <= 0 {
		c.MaxParticipants = 1000
	}
	if c.MissedLimit <= 0 {
		c.MissedLimit = 500
	}
	if c.ReplyBytes <= 0 {
		c.ReplyBytes = 512 << 10
	}
	if c.TypingTTL < time.Second {
		c.TypingTTL = typingTTLDefault
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Service is one messaging instance.
type Service struct {
	cfg Config
	nc  *nats.Conn
	js  jetstream.JetStream
	log *slog.Logger

	events   jetstream.Stream
	convs    jetstream.KeyValue
	members  jetstream.KeyValue
	messages jetstream.KeyValue
	receipts jetstream.KeyValue
	typists  jetstream.KeyValue
	reacts   jetstream.KeyValue

	srv    *svc.Server
	bg     context.Context    // of the watchers, the sweeper and file removals
	cancel context.CancelFunc // ends them
	wg     sync.WaitGroup     // the typing and conversation watchers, the sweeper, file removals

	filesRemoved *prometheus.CounterVec // reason: unattached or deleted_message

	seed  maphash.Seed
	locks [256]chan struct{} // striped by conversation: appends in order (lock)
	// reactLocks, striped by message, serialize this instance's reacts on
	// one message (taken before a conversation's lock, never after), so
	// that they do not race each other into compare-and-set retries.
	reactLocks [256]chan struct{}
	last       sync.Map // <org>.<conv> -> tail, the last event this instance appended (tally.go)

	convCache  *convCache             // records for the send path's check
	unreads    *unreadCache           // unread counts computed (inbox_cache.go)
	convChecks *prometheus.CounterVec // source: cached or read
}

// Setup creates the stream and buckets of a Service with cfg, or updates
// them to it. It needs a NATS user that may manage JetStream (an admin);
// New only opens them (natsx.Open).
func Setup(ctx context.Context, js jetstream.JetStream, cfg Config) error {
	cfg.setDefaults()
	s := &Service{cfg: cfg, js: js}
	return storageHint(s.setup(ctx, natsx.Update))
}

// New opens the stream and buckets (creating them when missing, see
// natsx.Open) and starts answering commands, on chat.cmd (edges) and
// chat.sys (backends) subjects.
func New(ctx context.Context, nc *nats.Conn, cfg Config) (*Service, error) {
	cfg.setDefaults()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, nc: nc, js: js, log: cfg.Logger.With("service", names.Messaging), seed: maphash.MakeSeed(),
		convCache: newConvCache(convCacheSize),
		unreads:   newUnreadCache(unreadCacheSize),
		convChecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_messaging_send_checks_total",
			Help: "Membership checks of sends, by source: cached (a record known to hold at the expected last seq) or read.",
		}, []string{"source"}),
		filesRemoved: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_messaging_files_removed_total",
			Help: "Files removed from chat_files, by reason: unattached (the sweeper) or deleted_message.",
		}, []string{"reason"}),
	}
	for i := range s.locks {
		s.locks[i] = make(chan struct{}, 1)
		s.reactLocks[i] = make(chan struct{}, 1)
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{s.convChecks, s.filesRemoved} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, err
			}
		}
	}
	if err := s.checkReplySizes(); err != nil {
		return nil, err
	}
	if err := s.setup(ctx, natsx.Open); err != nil {
		return nil, storageHint(err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	s.bg, s.cancel = wctx, cancel
	if err := s.watchTyping(wctx); err != nil {
		cancel()
		return nil, err
	}
	if err := s.watchConversations(wctx); err != nil {
		cancel()
		s.wg.Wait()
		return nil, err
	}
	s.wg.Add(1)
	go s.sweepFiles(wctx)
	s.srv, err = svc.New(nc, svc.Config{Name: names.Messaging, System: true, Workers: cfg.Workers, Registerer: cfg.Registerer, Logger: s.log})
	if err != nil {
		return nil, err
	}
	if err := s.register(); err != nil {
		_ = s.Stop(ctx)
		return nil, err
	}
	return s, nil
}

func (s *Service) setup(ctx context.Context, mode natsx.Mode) error {
	var err error
	s.events, err = natsx.Stream(ctx, s.js, jetstream.StreamConfig{
		Name:        names.StreamEvents,
		Description: "Switchboard durable conversation events",
		Subjects:    []string{names.StoreSubjects},
		Storage:     jetstream.FileStorage,
		Replicas:    s.cfg.Replicas,
		MaxAge:      s.cfg.Retention,
		MaxBytes:    limitBytes(s.cfg.StreamMaxBytes),
		Duplicates:  s.cfg.DedupeWindow,
		AllowDirect: true,
		// A conversation's events are read back by sequence; never discard
		// new ones to make room.
		Discard: jetstream.DiscardOld,
	}, mode)
	if err != nil {
		return err
	}
	kv := func(bucket, desc string, ttl, markerTTL time.Duration, maxBytes int64, maxValue int) (jetstream.KeyValue, error) {
		return natsx.KV(ctx, s.js, jetstream.KeyValueConfig{
			Bucket: bucket, Description: desc, History: 1, TTL: ttl, LimitMarkerTTL: markerTTL,
			MaxBytes: limitBytes(maxBytes), MaxValueSize: int32(maxValue),
			Storage: jetstream.FileStorage, Replicas: s.cfg.Replicas,
		}, mode)
	}
	// Values are bounded too: a record by the participants it may hold,
	// the others are a few bytes (smallValue leaves room for headers).
	const smallValue = 1 << 10
	record := s.cfg.MaxParticipants*itemSize(ids.MaxLen) + 8*maxTitleChars + smallValue
	bucketBytes := s.cfg.BucketMaxBytes
	if s.convs, err = kv(names.BucketConversations, "conversation records", 0, 0, bucketBytes, record); err != nil {
		return err
	}
	if s.members, err = kv(names.BucketMemberships, "user -> conversations index", 0, time.Second, bucketBytes, smallValue); err != nil {
		return err
	}
	if s.messages, err = kv(names.BucketMessages, "message sender and deleted state", s.cfg.Retention, 0, s.cfg.StreamMaxBytes, smallValue); err != nil {
		return err
	}
	if s.receipts, err = kv(names.BucketReceipts, "delivered and read markers", 0, 0, bucketBytes, smallValue); err != nil {
		return err
	}
	// A message's reactions: at most maxReactionsPerMessage user ids and
	// maxEmojiPerMessage emoji, and the pending change (reactions.go).
	if s.reacts, err = kv(names.BucketReactions, "reactions of a message", s.cfg.Retention, 0, bucketBytes, reactionsValueBytes); err != nil {
		return err
	}
	// Per-key TTLs need limit markers, and History 1 (docs/nats-notes.md):
	// typists expire, memberships' delete markers expire.
	if s.typists, err = kv(names.BucketTyping, "who is typing, one key per typist with a TTL", 0, time.Second, bucketBytes, smallValue); err != nil {
		return err
	}
	// Files expire with their conversation's events.
	_, err = natsx.ObjectStore(ctx, s.js, files.Config(s.cfg.Replicas, s.cfg.FilesMaxBytes, s.cfg.Retention), mode)
	return err
}

// storageHint explains a refusal to reserve the size limits.
func storageHint(err error) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == errStorageResourcesExceeded {
		return fmt.Errorf("%w (JetStream reserves the size limits of the stream and buckets: lower StreamMaxBytes, BucketMaxBytes or FilesMaxBytes, or give the server more store)", err)
	}
	return err
}

// errStorageResourcesExceeded is JetStream's "insufficient storage
// resources available".
const errStorageResourcesExceeded jetstream.ErrorCode = 10047

// limitBytes is a size limit as JetStream takes it: -1 for none.
func limitBytes(n int64) int64 {
	if n < 0 {
		return -1
	}
	return n
}

func (s *Service) register() error {
	for _, err := range []error{
		svc.Handle(s.srv, names.ActionCreate, s.create),
		svc.Handle(s.srv, names.ActionAdd, s.add),
		svc.Handle(s.srv, names.ActionRemove, s.remove),
		svc.Handle(s.srv, names.ActionList, s.list),
		svc.Handle(s.srv, names.ActionJoin, s.join),
		svc.Handle(s.srv, names.ActionHistory, s.history),
		svc.Handle(s.srv, names.ActionSend, s.send),
		svc.Handle(s.srv, names.ActionEdit, s.edit),
		svc.Handle(s.srv, names.ActionDelete, s.delete),
		svc.Handle(s.srv, names.ActionDelivered, s.delivered),
		svc.Handle(s.srv, names.ActionRead, s.read),
		svc.Handle(s.srv, names.ActionTyping, s.typing),
		svc.Handle(s.srv, names.ActionReact, s.react),
		svc.Handle(s.srv, names.ActionReactions, s.reactions),
		svc.Handle(s.srv, names.ActionFile, s.fileAccess),
	} {
		if err != nil {
			return fmt.Errorf("messaging endpoints: %w", err)
		}
	}
	return nil
}

// Stop stops taking commands, finishes those in flight and ends the
// watchers.
func (s *Service) Stop(ctx context.Context) error {
	var err error
	if s.srv != nil {
		err = s.srv.Stop(ctx)
	}
	s.cancel()
	s.wg.Wait()
	return err
}

func (s *Service) stripe(key string) uint64 {
	return maphash.String(s.seed, key) % uint64(len(s.locks))
}
