package messaging

import (
	"context"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-chat/switchboard/kit/natsx"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// convCache keeps conversation records for the send path's membership
// check, so that a send need not read chat_conversations.
//
// Exactness does not rest on the cache being fresh. A membership change
// writes the record and then appends a conversation_updated event, so a
// record read after the conversation's last seq was known to be S holds
// every change whose event is at or before S; an entry remembers that S
// (validAt). A send trusts an entry only when it appends with expected
// last seq validAt: if its append succeeds, no event came in between, so
// no change was completed since the entry was known to hold (one still
// in progress is concurrent with the send, which is ordered before it). A
// wrong last seq makes the next attempt read the record again. An entry
// that refuses the sender is never trusted either: a fresh read decides.
//
// A KV watch drops entries whose record changed (on any instance), which
// takes out the records of changes that wrote the record but never got
// their event appended; while the watch is down nothing is trusted.
type convCache struct {
	max int

	mu      sync.Mutex
	entries map[string]*convEntry // by conversation key
	gen     uint64                // records changed, as the watch saw them
	off     bool                  // the watch ended
}

type convEntry struct {
	conv    *chatv1.Conversation
	validAt uint64 // conv holds when the conversation's last seq is this
}

// convCacheSize bounds the cached records (records hold up to
// MaxParticipants ids each).
const convCacheSize = 10_000

func newConvCache(max int) *convCache {
	return &convCache{max: max, entries: map[string]*convEntry{}}
}

// lookup returns the entry for key that holds at last seq prev, or nil.
func (cc *convCache) lookup(key string, prev uint64) *convEntry {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	e := cc.entries[key]
	if cc.off || e == nil || prev == 0 || e.validAt != prev {
		return nil
	}
	return e
}

// generation is taken before a fresh read: a record is cached only if no
// change was seen while it was read.
func (cc *convCache) generation() uint64 {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.gen
}

// advance records that an append expecting the last seq at which the
// check's record held succeeded with seq: the record holds at seq. hit is
// the entry the check trusted, or nil for a record read fresh (conv) at
// generation gen.
func (cc *convCache) advance(key string, hit *convEntry, conv *chatv1.Conversation, gen, seq uint64) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.off {
		return
	}
	if hit != nil {
		if cc.entries[key] == hit && seq > hit.validAt {
			hit.validAt = seq
		}
		return
	}
	if conv == nil || gen != cc.gen {
		return
	}
	if e := cc.entries[key]; e != nil && e.validAt >= seq {
		return
	}
	if _, ok := cc.entries[key]; !ok && len(cc.entries) >= cc.max {
		for k := range cc.entries { // any one
			delete(cc.entries, k)
			break
		}
	}
	cc.entries[key] = &convEntry{conv: conv, validAt: seq}
}

// changed drops key's entry: its record changed.
func (cc *convCache) changed(key string) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.gen++
	delete(cc.entries, key)
}

// stop trusts nothing any more: the watch ended.
func (cc *convCache) stop() {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.off = true
	clear(cc.entries)
}

// watchConversations follows chat_conversations' changes into the cache.
func (s *Service) watchConversations(ctx context.Context) error {
	w, err := s.convs.WatchAll(ctx, jetstream.UpdatesOnly(), jetstream.MetaOnly())
	if err != nil {
		return fmt.Errorf("watch conversations: %w", err)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.convCache.stop()
		natsx.Follow(ctx, w, func(e jetstream.KeyValueEntry) { s.convCache.changed(e.Key()) })
	}()
	return nil
}

// sendCheck is one send's membership check, run before each append
// attempt with the last seq the attempt expects.
type sendCheck struct {
	s    *Service
	p    *chatv1.Principal
	conv string
	key  string

	// What the last run passed with: a trusted entry, or a fresh record
	// read at generation gen.
	hit   *convEntry
	fresh *chatv1.Conversation
	gen   uint64
}

func (s *Service) senderCheck(p *chatv1.Principal, conv string) *sendCheck {
	return &sendCheck{s: s, p: p, conv: conv, key: names.ConversationKey(p.Org, conv)}
}

func (c *sendCheck) run(ctx context.Context, prev uint64) error {
	c.hit, c.fresh = nil, nil
	cc := c.s.convCache
	if e := cc.lookup(c.key, prev); e != nil && isParticipant(e.conv, c.p) {
		c.hit = e
		c.s.convChecks.WithLabelValues("cached").Inc()
		return nil
	}
	c.s.convChecks.WithLabelValues("read").Inc()
	gen := cc.generation()
	conv, err := c.s.memberConv(ctx, c.p, c.conv)
	if err != nil {
		return err
	}
	c.fresh, c.gen = conv, gen
	return nil
}

// appended tells the cache that the append after the last run stored seq.
func (c *sendCheck) appended(seq uint64) {
	c.s.convCache.advance(c.key, c.hit, c.fresh, c.gen, seq)
}
