//go:build linux

package runtime

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsgConn moves batches of datagrams with recvmmsg and sendmmsg, through
// the socket's RawConn so that Go's poller still does the waiting. The
// headers, I/O vectors and address buffers are allocated once: a batch
// costs one system call and no allocation.
//
// The calls are raw (RawSyscall6: Go's scheduler is not told): the
// socket is non-blocking, so neither call ever sleeps, and EAGAIN hands
// the waiting to the poller. Through Syscall6, a call that outlasted a
// tick of the runtime's monitor (sysmon: 20 µs, common on a loaded
// machine, where sendmmsg on loopback delivers to the receiving sockets)
// had its P handed to another thread, a wakeup, and set the monitor
// polling every 20 µs again for a millisecond; and entering any such
// call woke the monitor when it slept. On bench/kv's 5-node loopback cluster
// sharing 2 cores the monitor took 12-14% of each node's CPU; raw calls
// cut its wakeups by a quarter and the Ps handed off by 60-80%.
type mmsgConn struct {
	rc syscall.RawConn
	v6 bool

	rh    []unix.Mmsghdr
	riov  []unix.Iovec
	rname []unix.RawSockaddrInet6
	rn    int
	rerr  error
	readF func(fd uintptr) bool

	wh     []unix.Mmsghdr
	wiov   []unix.Iovec
	wname  []unix.RawSockaddrInet6
	wcount int
	wn     int
	werr   error
	writeF func(fd uintptr) bool
}

// newBatchConn returns the recvmmsg/sendmmsg implementation for c, or the
// portable one when c's RawConn is unavailable.
func newBatchConn(c *net.UDPConn, batch int) batchConn {
	rc, err := c.SyscallConn()
	if err != nil {
		return singleConn{c}
	}
	la, _ := c.LocalAddr().(*net.UDPAddr)
	m := &mmsgConn{
		rc:    rc,
		v6:    la != nil && la.IP.To4() == nil,
		rh:    make([]unix.Mmsghdr, batch),
		riov:  make([]unix.Iovec, batch),
		rname: make([]unix.RawSockaddrInet6, batch),
		wh:    make([]unix.Mmsghdr, batch),
		wiov:  make([]unix.Iovec, batch),
		wname: make([]unix.RawSockaddrInet6, batch),
	}
	for i := range m.rh {
		m.rh[i].Hdr.Iov = &m.riov[i]
		m.rh[i].Hdr.SetIovlen(1)
		m.rh[i].Hdr.Name = (*byte)(unsafe.Pointer(&m.rname[i]))
		m.wh[i].Hdr.Iov = &m.wiov[i]
		m.wh[i].Hdr.SetIovlen(1)
		m.wh[i].Hdr.Name = (*byte)(unsafe.Pointer(&m.wname[i]))
	}
	m.readF = m.doRead
	m.writeF = m.doWrite
	return m
}

func (m *mmsgConn) doRead(fd uintptr) bool {
	n, _, errno := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&m.rh[0])), uintptr(m.rn), 0, 0, 0)
	for errno == unix.EINTR {
		n, _, errno = unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&m.rh[0])), uintptr(m.rn), 0, 0, 0)
	}
	switch {
	case errno == unix.EAGAIN:
		return false // wait for the poller
	case errno != 0:
		m.rn, m.rerr = 0, errno
	default:
		m.rn, m.rerr = int(n), nil
	}
	return true
}

func (m *mmsgConn) readBatch(ms []message) (int, error) {
	if len(ms) > len(m.rh) {
		ms = ms[:len(m.rh)]
	}
	for i := range ms {
		m.riov[i].Base = unsafe.SliceData(ms[i].buf)
		m.riov[i].SetLen(len(ms[i].buf))
		m.rh[i].Hdr.Namelen = unix.SizeofSockaddrInet6
		m.rh[i].Hdr.Flags = 0
		m.rh[i].Len = 0
	}
	for {
		m.rn = len(ms)
		if err := m.rc.Read(m.readF); err != nil {
			return 0, err
		}
		if m.rerr != nil {
			if isTransient(m.rerr) {
				continue
			}
			return 0, m.rerr
		}
		// Compact: drop unknown address families. A truncated datagram
		// is kept with n = len(buf), one past what the caller accepts,
		// so that the caller counts it.
		k := 0
		for i := 0; i < m.rn; i++ {
			addr, ok := decodeSockaddr(&m.rname[i])
			if !ok {
				continue
			}
			if k != i {
				ms[k].buf, ms[i].buf = ms[i].buf, ms[k].buf
			}
			n := int(m.rh[i].Len)
			if m.rh[i].Hdr.Flags&unix.MSG_TRUNC != 0 {
				n = len(ms[k].buf)
			}
			ms[k].n, ms[k].addr = n, addr
			k++
		}
		if k > 0 {
			return k, nil
		}
	}
}

func (m *mmsgConn) doWrite(fd uintptr) bool {
	n, _, errno := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&m.wh[m.wn])), uintptr(m.wcount-m.wn), 0, 0, 0)
	for errno == unix.EINTR {
		n, _, errno = unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&m.wh[m.wn])), uintptr(m.wcount-m.wn), 0, 0, 0)
	}
	switch {
	case errno == unix.EAGAIN:
		return false
	case errno != 0:
		m.werr = errno
	default:
		m.wn += int(n)
	}
	return true
}

func (m *mmsgConn) writeBatch(ms []message) error {
	for len(ms) > 0 {
		chunk := ms
		if len(chunk) > len(m.wh) {
			chunk = chunk[:len(m.wh)]
		}
		ms = ms[len(chunk):]
		k := 0
		for i := range chunk {
			nl, ok := encodeSockaddr(&m.wname[k], chunk[i].addr, m.v6)
			if !ok {
				continue // an IPv6 peer on an IPv4 socket: unreachable
			}
			m.wiov[k].Base = unsafe.SliceData(chunk[i].buf)
			m.wiov[k].SetLen(chunk[i].n)
			m.wh[k].Hdr.Namelen = nl
			k++
		}
		m.wcount, m.wn = k, 0
		for m.wn < m.wcount {
			m.werr = nil
			if err := m.rc.Write(m.writeF); err != nil {
				return err
			}
			if m.werr != nil {
				// sendmmsg reports the error of the first datagram it
				// could not send: skip that one and go on with the rest.
				m.wn++
			}
		}
	}
	return nil
}

func isTransient(err error) bool {
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return false
	}
	// ICMP errors queued on the socket (port unreachable, ...) surface on
	// the next read of an unconnected socket; they mean nothing here.
	return errno == unix.ECONNREFUSED || errno == unix.EHOSTUNREACH || errno == unix.ENETUNREACH ||
		errno == unix.ENOBUFS || errno == unix.ENOMEM || errno == unix.EINTR
}

func decodeSockaddr(sa *unix.RawSockaddrInet6) (netip.AddrPort, bool) {
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		p := (*[2]byte)(unsafe.Pointer(&sa4.Port))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), uint16(p[0])<<8|uint16(p[1])), true
	case unix.AF_INET6:
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		a := netip.AddrFrom16(sa.Addr).Unmap()
		return netip.AddrPortFrom(a, uint16(p[0])<<8|uint16(p[1])), true
	}
	return netip.AddrPort{}, false
}

func encodeSockaddr(sa *unix.RawSockaddrInet6, ap netip.AddrPort, v6 bool) (uint32, bool) {
	a := ap.Addr()
	if !v6 {
		if !a.Is4() && !a.Is4In6() {
			return 0, false
		}
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		*sa4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: a.Unmap().As4()}
		p := (*[2]byte)(unsafe.Pointer(&sa4.Port))
		p[0], p[1] = byte(ap.Port()>>8), byte(ap.Port())
		return unix.SizeofSockaddrInet4, true
	}
	*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: a.As16()}
	p := (*[2]byte)(unsafe.Pointer(&sa.Port))
	p[0], p[1] = byte(ap.Port()>>8), byte(ap.Port())
	return unix.SizeofSockaddrInet6, true
}
