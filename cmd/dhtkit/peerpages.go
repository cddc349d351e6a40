package main

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/dhtkit/dhtkit"
	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/routing"
)

// peerPages finds the web pages of the nodes a `dhtkit node` knows, so
// that its page, /v1/members and the replicas of a key link to theirs
// (issue 14: the page linked to no other node; only `demo`, which starts
// every node itself, knew their addresses).
//
// The DHT carries the addresses: each node announces its HTTP port with
// BEP 5's announce_peer under pageInfohash(its id), and a node asks
// (get_peers) for the ids of its contacts. It keeps only a peer at the
// contact's own IP address: announce_peer records the announcer's real
// address (its token proves it), so a node can make another's link point
// nowhere but at a port of that other node's host.
type peerPages struct {
	n   *dhtkit.Node
	log *slog.Logger
	// port is the HTTP port to announce, 0 for none.
	port int
	// every is how often the contacts are looked at (more often at
	// first); retry and refresh are how long a page not found, and one
	// found, stay so before they are asked for again.
	every, retry, refresh time.Duration
	// perRound bounds the get_peers lookups of one round.
	perRound int

	mu   sync.Mutex
	urls map[netip.AddrPort]pageEntry // by the contact's UDP address
}

type pageEntry struct {
	id      id.ID
	url     string // "" when no page was found
	checked time.Time
}

// newPeerPages returns the finder of n's contacts' pages; port is n's own
// HTTP port to announce (0: announce none).
func newPeerPages(n *dhtkit.Node, port int, log *slog.Logger) *peerPages {
	return &peerPages{
		n: n, log: log, port: port,
		every: 30 * time.Second, retry: time.Minute, refresh: 10 * time.Minute,
		perRound: 16,
		urls:     map[netip.AddrPort]pageEntry{},
	}
}

// pageInfohash is the infohash a node announces its web page under.
func pageInfohash(node id.ID) id.ID { return id.FromString("dhtkit web page " + node.String()) }

// URL returns the web page of the node at the UDP address addr, or "" when
// none is known: httpapi.Options.PeerURL.
func (p *peerPages) URL(addr netip.AddrPort) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.urls[addr].url
}

// run announces and looks pages up until ctx ends.
func (p *peerPages) run(ctx context.Context) {
	var announced time.Time
	// The first rounds come quickly, while the node and its peers join
	// and announce, then every p.every.
	wait := time.Second
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// Re-announced well within the peers' 30-minute life.
		if p.port != 0 && time.Since(announced) > p.refresh {
			actx, cancel := context.WithTimeout(ctx, 30*time.Second)
			if err := p.n.Announce(actx, pageInfohash(p.n.ID()), p.port); err == nil {
				announced = time.Now()
			} else {
				p.log.Debug("web page not announced yet", "err", err)
			}
			cancel()
		}
		p.round(ctx, min(wait, p.retry))
		wait = min(2*wait, p.every)
		t.Reset(wait)
	}
}

// round looks up the pages of up to perRound contacts whose entry is
// missing, stale (a page not found, asked for longer than retry ago) or
// for another id, and forgets the nodes no longer known.
func (p *peerPages) round(ctx context.Context, retry time.Duration) {
	known := map[netip.AddrPort]id.ID{}
	for _, b := range p.n.Routing() {
		for _, c := range b.Contacts {
			if c.State != routing.Bad {
				known[c.Addr] = c.ID
			}
		}
	}
	now := time.Now()
	var todo []netip.AddrPort
	p.mu.Lock()
	for addr := range p.urls {
		if _, ok := known[addr]; !ok {
			delete(p.urls, addr)
		}
	}
	for addr, nid := range known {
		e, ok := p.urls[addr]
		stale := retry
		if e.url != "" {
			stale = p.refresh
		}
		if !ok || e.id != nid || now.Sub(e.checked) > stale {
			todo = append(todo, addr)
		}
	}
	p.mu.Unlock()
	for i, addr := range todo {
		if i == p.perRound || ctx.Err() != nil {
			return
		}
		nid := known[addr]
		gctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		peers, err := p.n.GetPeers(gctx, pageInfohash(nid))
		cancel()
		if err != nil && len(peers) == 0 {
			continue // asked again next round
		}
		e := pageEntry{id: nid, url: pageAt(addr, peers), checked: time.Now()}
		p.mu.Lock()
		p.urls[addr] = e
		p.mu.Unlock()
	}
}

// pageAt returns the web page among peers that is on the contact's own
// host (the IP of its UDP address), or "".
func pageAt(contact netip.AddrPort, peers []netip.AddrPort) string {
	ip := contact.Addr().Unmap()
	for _, peer := range peers {
		if peer.Addr().Unmap() == ip && peer.Port() != 0 {
			return "http://" + netip.AddrPortFrom(ip, peer.Port()).String() + "/"
		}
	}
	return ""
}

// announcePort returns the HTTP port a node announces as its web page, or
// 0 for none: a Chord node (no BEP 5 peers), a member of the public
// BitTorrent DHT (its routers' network is no place for it), or a page
// on loopback that its peers cannot reach over loopback (the link would
// name the node's public address, where nothing answers).
func announcePort(protocol, network, httpURL, listen string, bootstrap []string) int {
	if protocol == dhtkit.Chord || network == dhtkit.Mainline {
		return 0
	}
	u, err := netip.ParseAddrPort(trimURL(httpURL))
	if err != nil {
		return 0
	}
	if u.Addr().IsLoopback() {
		peersOnLoopback := len(bootstrap) > 0
		for _, b := range bootstrap {
			host, _, err := splitHostPort(b)
			a, perr := netip.ParseAddr(host)
			peersOnLoopback = peersOnLoopback && err == nil && (perr == nil && a.IsLoopback() || host == "localhost")
		}
		if len(bootstrap) == 0 {
			// The first node of a network: its peers reach it over
			// loopback when it listens there (or everywhere).
			host, _, err := splitHostPort(listen)
			a, perr := netip.ParseAddr(host)
			peersOnLoopback = err == nil && (host == "" || perr == nil && (a.IsLoopback() || a.IsUnspecified()))
		}
		if !peersOnLoopback {
			return 0
		}
	}
	return int(u.Port())
}

// trimURL turns http://HOST:PORT/ into HOST:PORT.
func trimURL(u string) string {
	return strings.TrimSuffix(strings.TrimPrefix(u, "http://"), "/")
}
