package seal

import (
	"cmp"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"slices"
	"sync/atomic"
	"time"
)

// A sealed datagram is
//
//	version(1) keyID(4) instance(8) seq(4) time(8) box
//
// sealed with AES-256-GCM (hardware-accelerated on the machines that carry
// the most traffic, which keeps the cost per query small). The nonce is
// instance|seq: the instance is 8 random bytes a sender draws at start
// and again every 2^32 datagrams, so nonces of one key never repeat
// without any coordination between nodes (two instances collide with odds
// of 2^-64). seq feeds the receiver's replay window, time (the sender's
// clock, Unix milliseconds) its freshness check. The whole header is
// additional data; the box holds sender(20) payload, so the sender's node
// id reaches members only, and no one else can change it.
const (
	version    = 0xd1 // no bencoded message starts with it: 'd' is 0x64
	headerSize = 1 + 4 + 8 + 4 + 8
	senderSize = 20
	tagSize    = 16
	// Overhead is what sealing adds to a datagram.
	Overhead = headerSize + senderSize + tagSize
)

// Errors of Open: why a datagram was dropped.
var (
	ErrShort      = errors.New("seal: datagram too short to be sealed")
	ErrUnsealed   = errors.New("seal: datagram not sealed: the sender has no network key")
	ErrUnknownKey = errors.New("seal: datagram sealed with a key not in the keyring: the sender uses another network key")
	ErrForged     = errors.New("seal: datagram does not authenticate: forged or corrupted")
	ErrReplayed   = errors.New("seal: datagram seen before (replay)")
	ErrStale      = errors.New("seal: datagram's timestamp is too far from our clock: a replay, or clocks out of sync (run NTP)")
)

// Config tunes a Sealer; zero values take the defaults.
type Config struct {
	// MaxAge is how far a datagram's timestamp may be from the receiver's
	// clock, either way (DefaultMaxAge). It bounds how long a captured
	// datagram could be replayed to a node that has forgotten its sender.
	MaxAge time.Duration
	// MaxSources bounds the replay windows kept, one per sending
	// instance (DefaultMaxSources): the least recently heard is forgotten
	// first, and forgetting one raises the bar every unknown sender's
	// timestamp must clear, so forgetting never readmits a replay.
	MaxSources int
}

// Defaults of Config.
const (
	DefaultMaxAge     = time.Minute
	DefaultMaxSources = 4096
	windowBits        = 256 // datagrams a sender may reorder
)

// Stats count what a Sealer sealed, opened and dropped.
type Stats struct {
	Sealed, Opened uint64
	// Dropped datagrams, by cause. Unsealed, UnknownKey and Forged are the
	// undecryptable ones: a peer without the key, with another key, or an
	// attacker.
	Short, Unsealed, UnknownKey, Forged, Replayed, Stale uint64
}

// Undecryptable is the number of datagrams no key of the keyring opened.
func (s Stats) Undecryptable() uint64 { return s.Unsealed + s.UnknownKey + s.Forged }

// Sealer seals and opens one node's datagrams. Seal and Open must not be
// called concurrently (the runtime calls them under its lock); SetKeyring,
// Keyring and Stats may be called from any goroutine.
type Sealer struct {
	ring atomic.Pointer[Keyring]
	self [senderSize]byte
	inst uint64
	seq  uint32
	cfg  Config

	win   map[uint64]*window
	floor int64 // an unknown sender's timestamp must be above this (ms)

	stats struct {
		sealed, opened, short, unsealed, unknownKey, forged, replayed, stale atomic.Uint64
	}
}

// window is the replay state of one sending instance: the highest sequence
// accepted and a bitmap of the windowBits below it.
type window struct {
	hi    uint64
	bits  [windowBits / 64]uint64
	ts    int64 // the sender's timestamp on its highest sequence
	heard int64 // our clock when we last accepted from it: the eviction order
}

// New returns a Sealer for the node self (its 20-byte id, which every
// datagram carries to its receiver) sealing with ring.
func New(ring *Keyring, self [20]byte, cfg Config) *Sealer {
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.MaxSources <= 0 {
		cfg.MaxSources = DefaultMaxSources
	}
	s := &Sealer{self: self, inst: newInstance(), cfg: cfg, win: make(map[uint64]*window)}
	s.ring.Store(ring)
	return s
}

func newInstance() uint64 {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported systems
	}
	return binary.BigEndian.Uint64(b[:])
}

// SetKeyring replaces the keyring: the next datagram is sealed with its
// first key.
func (s *Sealer) SetKeyring(ring *Keyring) { s.ring.Store(ring) }

// Keyring returns the keyring in use.
func (s *Sealer) Keyring() *Keyring { return s.ring.Load() }

// Stats returns the counters.
func (s *Sealer) Stats() Stats {
	return Stats{
		Sealed: s.stats.sealed.Load(), Opened: s.stats.opened.Load(),
		Short: s.stats.short.Load(), Unsealed: s.stats.unsealed.Load(),
		UnknownKey: s.stats.unknownKey.Load(), Forged: s.stats.forged.Load(),
		Replayed: s.stats.replayed.Load(), Stale: s.stats.stale.Load(),
	}
}

// Seal appends the sealed form of payload to dst and returns it. now is
// the sender's clock. dst and payload must not overlap.
func (s *Sealer) Seal(dst, payload []byte, now time.Time) []byte {
	k := &s.ring.Load().keys[0]
	if s.seq == ^uint32(0) {
		// A nonce must never repeat: a new instance starts over.
		s.inst, s.seq = newInstance(), 0
	}
	s.seq++
	n := len(dst)
	dst = binary.BigEndian.AppendUint32(append(dst, version), k.id)
	dst = binary.BigEndian.AppendUint64(dst, s.inst)
	dst = binary.BigEndian.AppendUint32(dst, s.seq)
	dst = binary.BigEndian.AppendUint64(dst, uint64(now.UnixMilli()))
	hdr := dst[n : n+headerSize]
	// The box's plaintext is sender|payload: build it in place, then seal
	// it in place.
	p := len(dst)
	dst = append(dst, s.self[:]...)
	dst = append(dst, payload...)
	dst = k.aead.Seal(dst[:p], hdr[5:17], dst[p:], hdr)
	s.stats.sealed.Add(1)
	return dst
}

// Open authenticates and decrypts packet in place and returns the payload
// (a subslice of packet) and the sender's node id. It fails, leaving every
// state as it was, on a datagram no key of the keyring opens, one whose
// sequence the sender's replay window has seen, or one whose timestamp is
// more than MaxAge from now.
func (s *Sealer) Open(packet []byte, now time.Time) (payload []byte, sender [20]byte, err error) {
	if len(packet) < Overhead {
		if len(packet) > 0 && packet[0] == 'd' {
			s.stats.unsealed.Add(1)
			return nil, sender, ErrUnsealed
		}
		s.stats.short.Add(1)
		return nil, sender, ErrShort
	}
	if packet[0] != version {
		if packet[0] == 'd' {
			s.stats.unsealed.Add(1)
			return nil, sender, ErrUnsealed
		}
		s.stats.forged.Add(1)
		return nil, sender, ErrForged
	}
	id := binary.BigEndian.Uint32(packet[1:5])
	ring := s.ring.Load()
	var k *key
	for i := range ring.keys {
		if ring.keys[i].id == id {
			k = &ring.keys[i]
			break
		}
	}
	if k == nil {
		s.stats.unknownKey.Add(1)
		return nil, sender, ErrUnknownKey
	}
	inst := binary.BigEndian.Uint64(packet[5:13])
	seq := uint64(binary.BigEndian.Uint32(packet[13:17]))
	ts := int64(binary.BigEndian.Uint64(packet[17:25]))
	// Cheap checks first, on the unauthenticated header: they only ever
	// drop, and spare the AEAD a replay flood.
	w := s.win[inst]
	if w != nil && !w.fresh(seq) || w == nil && ts <= s.floor {
		s.stats.replayed.Add(1)
		return nil, sender, ErrReplayed
	}
	ms := now.UnixMilli()
	if d := ts - ms; d > s.cfg.MaxAge.Milliseconds() || -d > s.cfg.MaxAge.Milliseconds() {
		s.stats.stale.Add(1)
		return nil, sender, ErrStale
	}
	box := packet[headerSize:]
	plain, err := k.aead.Open(box[:0], packet[5:17], box, packet[:headerSize])
	if err != nil {
		s.stats.forged.Add(1)
		return nil, sender, ErrForged
	}
	// Authentic: only now may it change the replay state.
	if w == nil {
		w = s.admit(inst, ms)
	}
	w.accept(seq, ts, ms)
	copy(sender[:], plain[:senderSize])
	s.stats.opened.Add(1)
	return plain[senderSize:], sender, nil
}

// admit makes a window for a new sending instance. When the table is full
// it forgets the least recently heard eighth of it at once, so that a
// stream of new senders costs one scan per MaxSources/8 of them.
func (s *Sealer) admit(inst uint64, now int64) *window {
	if len(s.win) >= s.cfg.MaxSources {
		type aged struct {
			heard int64
			inst  uint64
		}
		all := make([]aged, 0, len(s.win))
		for i, w := range s.win {
			all = append(all, aged{w.heard, i})
		}
		slices.SortFunc(all, func(a, b aged) int { return cmp.Compare(a.heard, b.heard) })
		for _, a := range all[:max(1, len(all)/8)] {
			// Every datagram of a forgotten instance carries a timestamp
			// at most its w.ts: none may come back as a new sender.
			s.floor = max(s.floor, s.win[a.inst].ts)
			delete(s.win, a.inst)
		}
	}
	w := &window{}
	s.win[inst] = w
	return w
}

// fresh reports whether seq is above the window or in it and unseen.
func (w *window) fresh(seq uint64) bool {
	if seq > w.hi {
		return true
	}
	d := w.hi - seq
	return d < windowBits && w.bits[d/64]&(1<<(d%64)) == 0
}

// accept records seq, which fresh allowed.
func (w *window) accept(seq uint64, ts, now int64) {
	w.heard = now
	if seq > w.hi {
		shift := seq - w.hi
		w.shift(shift)
		w.hi, w.ts = seq, max(w.ts, ts)
		w.bits[0] |= 1
		return
	}
	d := w.hi - seq
	w.bits[d/64] |= 1 << (d % 64)
	w.ts = max(w.ts, ts)
}

// shift moves the bitmap n sequences up: bit d (sequence hi-d) becomes
// bit d+n.
func (w *window) shift(n uint64) {
	if n >= windowBits {
		w.bits = [windowBits / 64]uint64{}
		return
	}
	words, bits := int(n/64), n%64
	for i := len(w.bits) - 1; i >= 0; i-- {
		var v uint64
		if j := i - words; j >= 0 {
			v = w.bits[j] << bits
			if bits > 0 && j > 0 {
				v |= w.bits[j-1] >> (64 - bits)
			}
		}
		w.bits[i] = v
	}
}
