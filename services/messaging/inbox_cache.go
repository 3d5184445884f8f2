package messaging

import "sync"

// unreadCache keeps the unread counts this instance computed, by what
// determines them: the conversation, the caller, the caller's read marker
// and the conversation's last seq. The events between read and the last
// seq never change once stored (a deletion is an event of its own, which
// moves the last seq), so an entry stays right for as long as its key
// holds; a new event or a moved marker makes another key. So a user who
// lists again and again while nothing happens costs one scan per
// conversation, not one per list: the scans (up to unreadScanEvents
// events each) are what makes a list page dear. Safe for concurrent use.
type unreadCache struct {
	mu  sync.Mutex
	max int
	m   map[unreadKey]uint32
}

// unreadKey is what an unread count is a function of.
type unreadKey struct {
	org, conv, user string
	read, last      uint64
}

// unreadCacheSize bounds the entries (about 100 bytes each); when full the
// cache starts over, which costs the next lists their scans again.
const unreadCacheSize = 50_000

func newUnreadCache(max int) *unreadCache {
	return &unreadCache{max: max, m: map[unreadKey]uint32{}}
}

func (c *unreadCache) get(k unreadKey) (uint32, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.m[k]
	return n, ok
}

func (c *unreadCache) put(k unreadKey, n uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[k] = n
}

// reset empties the cache.
func (c *unreadCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.m)
}
