package ratelimit

import (
	"hash/maphash"
	"sync"
	"time"
)

// numStripes is how many locks the buckets are spread over. A check holds
// its bucket's stripe for its KV round trip, so that one instance never
// races itself on a key; unrelated keys share a stripe rarely.
const numStripes = 1024

// entry is what an instance remembers of a bucket: the state at a revision
// of its key. It is kept until the key would have expired.
type entry struct {
	st      state
	rev     uint64 // the key's last sequence; 0 when it does not exist
	expires time.Time
	// trusted: no other instance wrote the key lately, as far as this one
	// knows, so a write may go without a read first.
	trusted bool
}

// stripe is a lock and the cached buckets whose keys hash to it.
type stripe struct {
	mu sync.Mutex
	m  map[string]entry // guarded by mu
}

// cache holds the buckets an instance read or wrote last, so that a check
// on a bucket this instance wrote last skips the read. An entry may be
// stale (another instance wrote since); the compare-and-set write catches
// that, and a stale entry can only overstate the tokens, so a denial from
// the cache is always right.
type cache struct {
	seed      maphash.Seed
	perStripe int // size cap of each stripe's map
	stripes   [numStripes]stripe
}

func newCache(size int) *cache {
	c := &cache{seed: maphash.MakeSeed(), perStripe: max(size/numStripes, 1)}
	for i := range c.stripes {
		c.stripes[i].m = map[string]entry{}
	}
	return c
}

// lock locks key's stripe and returns it; the caller unlocks it.
func (c *cache) lock(key string) *stripe {
	st := &c.stripes[maphash.String(c.seed, key)%numStripes]
	st.mu.Lock()
	return st
}

// get returns key's entry unless it expired (then it is dropped).
func (st *stripe) get(key string, now time.Time) (entry, bool) {
	e, ok := st.m[key]
	if ok && !now.Before(e.expires) {
		delete(st.m, key)
		return entry{}, false
	}
	return e, ok
}

// put remembers e for key. A full stripe first drops its expired entries,
// then, if still full, a quarter of its entries at random.
func (st *stripe) put(key string, e entry, now time.Time, limit int) {
	if _, ok := st.m[key]; !ok && len(st.m) >= limit {
		for k, old := range st.m {
			if !now.Before(old.expires) {
				delete(st.m, k)
			}
		}
		for k := range st.m {
			if len(st.m) < limit*3/4 || len(st.m) == 0 {
				break
			}
			delete(st.m, k)
		}
	}
	st.m[key] = e
}

func (st *stripe) drop(key string) { delete(st.m, key) }
