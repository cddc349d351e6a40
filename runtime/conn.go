package runtime

import (
	"net"
	"net/netip"
)

// message is one datagram in a batch. For reads, buf is the buffer to fill
// and n and addr are set by the read; for writes, buf[:n] is sent to addr.
type message struct {
	buf  []byte
	n    int
	addr netip.AddrPort
}

// batchConn reads and writes datagrams in batches: on Linux one
// recvmmsg/sendmmsg system call moves a whole batch, elsewhere the batch
// is a loop over single reads and writes. Neither method allocates.
type batchConn interface {
	// readBatch blocks until at least one datagram arrives and returns how
	// many of ms it filled. A datagram longer than its buffer comes back
	// with n = len(buf): the caller sizes buffers one byte past the
	// largest datagram it accepts and counts such datagrams.
	readBatch(ms []message) (int, error)
	// writeBatch sends every message of ms. A datagram the kernel refuses
	// (no route, ...) is skipped; the error is only for a dead socket.
	writeBatch(ms []message) error
}

// singleConn is the portable batchConn: one system call per datagram.
type singleConn struct{ c *net.UDPConn }

func (s singleConn) readBatch(ms []message) (int, error) {
	n, addr, err := s.c.ReadFromUDPAddrPort(ms[0].buf)
	if err != nil {
		return 0, err
	}
	ms[0].n, ms[0].addr = n, unmap(addr)
	return 1, nil
}

func (s singleConn) writeBatch(ms []message) error {
	for i := range ms {
		if _, err := s.c.WriteToUDPAddrPort(ms[i].buf[:ms[i].n], ms[i].addr); err != nil && isClosed(err) {
			return err
		}
	}
	return nil
}

func unmap(a netip.AddrPort) netip.AddrPort {
	if a.Addr().Is4In6() {
		return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
	}
	return a
}
