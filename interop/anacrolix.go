package interop

import (
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/anacrolix/dht/v2"
	"github.com/anacrolix/dht/v2/krpc"
	peer_store "github.com/anacrolix/dht/v2/peer-store"
	alog "github.com/anacrolix/log"
	"golang.org/x/time/rate"
)

// AnacrolixConfig returns a configuration for an anacrolix/dht v2 server on
// conn that works on loopback and stays there. What it changes from
// dht.NewDefaultServerConfig, and why:
//
//   - StartingNodes returns nothing: the default resolves and contacts the
//     public bootstrap routers whenever the table is empty.
//   - NoSecurity is true: BEP 42 ids cannot be derived for 127.0.0.1, and
//     with enforcement on the server drops every loopback node as insecure.
//     (The default config sets it; a hand-made ServerConfig must too.)
//   - PeerStore is set to a PeerStore of ours: without one the server
//     ignores announce_peer and answers get_peers with no token, and its own
//     peer_store.InMemory keys peers by IP only and decodes the key back
//     into an address, so it returns corrupt addresses (anacrolix/dht#79)
//     and keeps one peer per IP, which on loopback is one peer in all.
//   - SendLimiter is unlimited: the default (25 packets/s, shared by every
//     server in the process) drops replies under any load.
//   - Logger discards everything below Critical.
func AnacrolixConfig(conn net.PacketConn) (*dht.ServerConfig, *PeerStore) {
	ps := new(PeerStore)
	cfg := dht.NewDefaultServerConfig()
	cfg.Conn = conn
	cfg.NoSecurity = true
	cfg.StartingNodes = func() ([]dht.Addr, error) { return nil, nil }
	cfg.PeerStore = ps
	cfg.SendLimiter = rate.NewLimiter(rate.Inf, 0)
	logger := alog.NewLogger("anacrolix")
	logger.SetHandlers(alog.DiscardHandler)
	cfg.Logger = logger.FilterLevel(alog.Critical)
	return cfg, ps
}

// StartAnacrolix starts an anacrolix/dht server on addr (e.g.
// "127.0.0.1:0") with AnacrolixConfig.
func StartAnacrolix(addr string) (*dht.Server, *PeerStore, error) {
	conn, err := net.ListenPacket("udp4", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("anacrolix: listen: %w", err)
	}
	cfg, ps := AnacrolixConfig(conn)
	s, err := dht.NewServer(cfg)
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("anacrolix: new server: %w", err)
	}
	return s, ps, nil
}

// AnacrolixAddr is the bound address of s.
func AnacrolixAddr(s *dht.Server) netip.AddrPort {
	return s.Addr().(*net.UDPAddr).AddrPort()
}

// PeerStore is a peer_store.Interface that keeps every distinct address
// announced for an infohash, unlike peer_store.InMemory (see
// AnacrolixConfig). It never expires peers: the servers it backs live for
// one test or one benchmark run.
type PeerStore struct {
	mu    sync.Mutex
	peers map[peer_store.InfoHash][]netip.AddrPort
}

var _ peer_store.Interface = (*PeerStore)(nil)

// AddPeer records na for ih once.
func (s *PeerStore) AddPeer(ih peer_store.InfoHash, na krpc.NodeAddr) {
	ip, ok := netip.AddrFromSlice(na.IP)
	if !ok || na.Port <= 0 || na.Port > 0xffff {
		return
	}
	ap := netip.AddrPortFrom(ip.Unmap(), uint16(na.Port))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.peers == nil {
		s.peers = make(map[peer_store.InfoHash][]netip.AddrPort)
	}
	for _, p := range s.peers[ih] {
		if p == ap {
			return
		}
	}
	s.peers[ih] = append(s.peers[ih], ap)
}

// GetPeers returns the peers announced for ih.
func (s *PeerStore) GetPeers(ih peer_store.InfoHash) []krpc.NodeAddr {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]krpc.NodeAddr, 0, len(s.peers[ih]))
	for _, p := range s.peers[ih] {
		out = append(out, krpc.NodeAddr{IP: p.Addr().AsSlice(), Port: int(p.Port())})
	}
	return out
}

// Peers returns the peers announced for ih as netip addresses.
func (s *PeerStore) Peers(ih [20]byte) []netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]netip.AddrPort(nil), s.peers[ih]...)
}
