//go:build linux

package rawtcp

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Listener returns ln, whose TCP connections Accept now returns with raw
// reads and writes.
func Listener(ln net.Listener) net.Listener { return listener{ln} }

type listener struct{ net.Listener }

func (l listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c, nil
	}
	return newConn(tc), nil
}

// conn is a *net.TCPConn with raw reads and writes. A read and a write
// may run at once, but not two reads or two writes: each direction's
// buffer and result live in the conn (so that a call allocates nothing),
// under its own lock.
type conn struct {
	*net.TCPConn
	rc syscall.RawConn

	rmu   sync.Mutex
	rbuf  []byte
	rn    int
	rerr  syscall.Errno
	readF func(fd uintptr) bool

	wmu    sync.Mutex
	wbuf   []byte
	wn     int
	werr   syscall.Errno
	writeF func(fd uintptr) bool
}

// newConn returns c with raw reads and writes, or c itself when its
// RawConn is unavailable.
func newConn(c *net.TCPConn) net.Conn {
	rc, err := c.SyscallConn()
	if err != nil {
		return c
	}
	rw := &conn{TCPConn: c, rc: rc}
	rw.readF, rw.writeF = rw.doRead, rw.doWrite
	return rw
}

// doRead reads once into rbuf; false (EAGAIN) asks the poller to wait
// until the socket is readable and call it again.
func (c *conn) doRead(fd uintptr) bool {
	for {
		n, _, errno := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&c.rbuf[0])), uintptr(len(c.rbuf)))
		switch errno {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		case 0:
			c.rn = int(n)
		}
		c.rerr = errno
		return true
	}
}

func (c *conn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.rbuf, c.rn, c.rerr = b, 0, 0
	err := c.rc.Read(c.readF)
	c.rbuf = nil
	n, err := c.result("read", c.rn, c.rerr, err)
	if err == nil && n == 0 {
		return 0, io.EOF
	}
	return n, err
}

// doWrite writes what is left of wbuf; false (EAGAIN) asks the poller to
// wait until the socket is writable and call it again.
func (c *conn) doWrite(fd uintptr) bool {
	for c.wn < len(c.wbuf) {
		n, _, errno := unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&c.wbuf[c.wn])), uintptr(len(c.wbuf)-c.wn))
		switch errno {
		case 0:
			c.wn += int(n)
		case unix.EINTR:
		case unix.EAGAIN:
			return false
		default:
			c.werr = errno
			return true
		}
	}
	return true
}

func (c *conn) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbuf, c.wn, c.werr = b, 0, 0
	err := c.rc.Write(c.writeF)
	c.wbuf = nil
	return c.result("write", c.wn, c.werr, err)
}

// result is what a Read or Write returns: n, and the poller's error or
// the call's, wrapped as net wraps them.
func (c *conn) result(op string, n int, errno syscall.Errno, err error) (int, error) {
	if err == nil && errno != 0 {
		err = os.NewSyscallError(op, errno)
	}
	if err != nil {
		return n, c.opError(op, err)
	}
	return n, nil
}

// opError wraps err as the net package wraps a TCPConn's, so that callers
// (net/http among them) see timeouts and closed connections as usual.
// The RawConn's own errors (a deadline, a closed socket) come wrapped for
// a "raw-read" or "raw-write": that wrapping is renamed.
func (c *conn) opError(op string, err error) error {
	if oe, ok := err.(*net.OpError); ok {
		oe.Op = op // the RawConn's own, made for this call
		return oe
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
