package dhtkit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/routing"
	"github.com/dhtkit/dhtkit/store"
)

// KeysOptions bound a listing of the network's keys (Node.Keys).
type KeysOptions struct {
	Prefix string // only keys that start with it
	After  string // only keys after it, in byte order: the last key of the previous page
	Limit  int    // at most this many keys (default 1000, at most MaxKeysLimit)
	Nodes  int    // at most this many nodes asked besides this one (default and at most MaxKeysNodes)
}

// Bounds of a key listing.
const (
	MaxKeysLimit = 10000
	MaxKeysNodes = 64
	// maxKeysScan bounds the distinct keys one listing holds in memory
	// while it merges the nodes' answers; past it the listing is Partial.
	maxKeysScan = 1 << 20
	// keysTries is how often a page is asked for before its node counts
	// as not answering.
	keysTries = 3
)

// KeyList is a page of the network's keys.
type KeyList struct {
	Keys     []string // live keys (newest version not a delete), sorted, without chunks
	More     bool     // keys past the last one: ask again with After set to it
	Asked    int      // nodes asked, this one included
	Answered int      // nodes that answered every query
	Partial  bool     // a node did not answer, the scan bound was reached, or a Chord node (its own keys only): keys may be missing
}

// Keys lists the keys of the network: this node's store and those of the
// nodes it knows (its routing table's good and questionable contacts, at
// most opt.Nodes of them, asked in parallel), merged by newest version.
// Each node is asked page by page (kademlia.KVKeys), so every answer is
// one datagram; a node that does not answer makes the list Partial, not
// an error. A network larger than the nodes asked shows the keys those
// nodes hold: on a network of up to MaxKeysNodes+1 nodes, every key.
//
// Every page asks every node again: a listing costs the same for each
// page, bounded by the nodes asked and the keys they hold.
func (n *Node) Keys(ctx context.Context, opt KeysOptions) (KeyList, error) {
	if opt.Limit <= 0 {
		opt.Limit = 1000
	}
	opt.Limit = min(opt.Limit, MaxKeysLimit)
	if opt.Nodes <= 0 || opt.Nodes > MaxKeysNodes {
		opt.Nodes = MaxKeysNodes
	}
	newest := make(map[string]kademlia.KeyEntry)
	var mu sync.Mutex
	var out KeyList
	take := func(e kademlia.KeyEntry) {
		// A key's values (store.ValueKey) list as the key.
		if base := store.BaseKey(e.Key); !strings.HasPrefix(base, opt.Prefix) || base <= opt.After || strings.HasPrefix(e.Key, chunkKeyPrefix) {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if old, ok := newest[e.Key]; ok && !e.Version.Newer(old.Version) {
			return
		}
		if len(newest) >= maxKeysScan {
			out.Partial = true
			return
		}
		newest[e.Key] = e
	}
	n.rt.Inspect(func() {
		now := time.Now()
		_ = n.eng.Store().Each(func(r store.Record) bool {
			if !r.Expires.IsZero() && !r.Expires.After(now) {
				return true
			}
			take(kademlia.KeyEntry{Key: r.Key, Version: r.Version, Deleted: r.Deleted})
			return true
		})
	})
	out.Asked, out.Answered = 1, 1
	if n.kad == nil {
		// The Chord engine has no key listing yet: this node's keys only.
		out.Partial = true
	} else {
		var peers []kademlia.KVKeys
		for _, b := range n.Routing() {
			for _, c := range b.Contacts {
				if c.State != routing.Bad && len(peers) < opt.Nodes {
					peers = append(peers, kademlia.KVKeys{Addr: c.Addr})
				}
			}
		}
		out.Asked += len(peers)
		var wg sync.WaitGroup
		sem := make(chan struct{}, 8)
		for _, p := range peers {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				ok := true
				for first, tries := 0, 0; first < kademlia.KeyBuckets && ok; {
					res, err := n.rt.Do(ctx, kademlia.KVKeys{Addr: p.Addr, First: first, Count: kademlia.KeyBuckets - first})
					if errors.Is(err, kademlia.ErrTimeout) && tries < keysTries-1 && ctx.Err() == nil {
						tries++ // a datagram lost: ask again
						continue
					}
					tries = 0
					if err != nil || res.Next <= first {
						ok = false
						break
					}
					for _, e := range res.Entries {
						take(e)
					}
					first = res.Next
				}
				mu.Lock()
				if ok {
					out.Answered++
				} else {
					out.Partial = true
				}
				mu.Unlock()
			})
		}
		wg.Wait()
		if err := ctx.Err(); err != nil {
			return KeyList{}, fmt.Errorf("dhtkit: keys: %w", err)
		}
	}
	live := make(map[string]bool, len(newest))
	for k, e := range newest {
		if k = store.BaseKey(k); !e.Deleted && !live[k] {
			live[k] = true
			out.Keys = append(out.Keys, k)
		}
	}
	slices.Sort(out.Keys)
	if len(out.Keys) > opt.Limit {
		out.Keys, out.More = out.Keys[:opt.Limit], true
	}
	return out, nil
}
