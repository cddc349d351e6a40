package store

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// syncRing runs the log's writes and fdatasyncs through io_uring, so
// that the goroutine waiting for the disk parks on Go's poller instead of
// blocking its thread in a system call. Go hands the P of a thread blocked in a
// call to another thread, and sets its monitor polling every 20 µs for a
// while after: on one P (bench/kv's nodes) that was most of what a durable
// put cost beyond an in-memory one (BENCHMARKS.md, "Session 10 (issue
// 15)"). The kernel runs the fdatasync on a worker of its own and
// signals an eventfd, which Go's poller waits on; the submission and the
// reads are raw calls that cannot block. Where io_uring is missing or
// refused (an old kernel, a seccomp filter, kernel.io_uring_disabled),
// newSyncRing fails and the log writes and calls fdatasync itself, as it
// always did.
//
// A ring does one write and its fdatasync at a time (the store's lock
// already serialises the log's writes): 2 entries.
type syncRing struct {
	mu sync.Mutex
	fd int
	ev *os.File // the eventfd, non-blocking, through Go's poller
	rc syscall.RawConn

	sq, cq, sqes []byte // the mappings

	sqTail, sqMask, sqArray *uint32
	cqHead, cqTail, cqMask  *uint32
	cqes                    unsafe.Pointer

	waitF func(fd uintptr) bool
}

// ringParams is struct io_uring_params.
type ringParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFD uint32
	resv                                                                   [3]uint32
	sqOff                                                                  struct {
		head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
		userAddr                                                        uint64
	}
	cqOff struct {
		head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
		userAddr                                                        uint64
	}
}

// ringSQE is struct io_uring_sqe, with only what a write and an fsync
// use named.
type ringSQE struct {
	opcode, flags   uint8
	ioprio          uint16
	fd              int32
	off, addr       uint64
	len, fsyncFlags uint32
	userData        uint64
	_               [24]byte
}

// ringCQE is struct io_uring_cqe.
type ringCQE struct {
	userData uint64
	res      int32
	flags    uint32
}

const (
	ringOpFsync       = 3  // IORING_OP_FSYNC
	ringOpWrite       = 23 // IORING_OP_WRITE
	ringLink          = 4  // IOSQE_IO_LINK
	ringFsyncDatasync = 1  // IORING_FSYNC_DATASYNC
	ringOffSQRing     = 0
	ringOffCQRing     = 0x8000000
	ringOffSQEs       = 0x10000000
	ringRegEventfd    = 4 // IORING_REGISTER_EVENTFD
)

var (
	_ [64 - unsafe.Sizeof(ringSQE{})]byte
	_ [unsafe.Sizeof(ringSQE{}) - 64]byte
	_ [120 - unsafe.Sizeof(ringParams{})]byte
	_ [unsafe.Sizeof(ringParams{}) - 120]byte
)

// newSyncRing sets up a ring and its eventfd, or says why it cannot.
func newSyncRing() (r *syncRing, err error) {
	var p ringParams
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, 2, uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, fmt.Errorf("io_uring_setup: %w", errno)
	}
	r = &syncRing{fd: int(fd)}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	if r.sq, err = unix.Mmap(r.fd, ringOffSQRing, int(p.sqOff.array+p.sqEntries*4), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return nil, fmt.Errorf("io_uring: mapping the submission ring: %w", err)
	}
	if r.cq, err = unix.Mmap(r.fd, ringOffCQRing, int(p.cqOff.cqes+p.cqEntries*uint32(unsafe.Sizeof(ringCQE{}))), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return nil, fmt.Errorf("io_uring: mapping the completion ring: %w", err)
	}
	if r.sqes, err = unix.Mmap(r.fd, ringOffSQEs, int(p.sqEntries)*int(unsafe.Sizeof(ringSQE{})), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return nil, fmt.Errorf("io_uring: mapping the submission entries: %w", err)
	}
	at := func(b []byte, off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&b[off])) }
	r.sqTail, r.sqMask, r.sqArray = at(r.sq, p.sqOff.tail), at(r.sq, p.sqOff.ringMask), at(r.sq, p.sqOff.array)
	r.cqHead, r.cqTail, r.cqMask = at(r.cq, p.cqOff.head), at(r.cq, p.cqOff.tail), at(r.cq, p.cqOff.ringMask)
	r.cqes = unsafe.Pointer(&r.cq[p.cqOff.cqes])

	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	r.ev = os.NewFile(uintptr(efd), "io_uring eventfd")
	if r.rc, err = r.ev.SyscallConn(); err != nil {
		return nil, err
	}
	e := int32(efd)
	if _, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, fd, ringRegEventfd, uintptr(unsafe.Pointer(&e)), 1, 0, 0); errno != 0 {
		return nil, fmt.Errorf("io_uring_register: %w", errno)
	}
	r.waitF = r.drain
	return r, nil
}

// drain empties the eventfd; false (EAGAIN) asks the poller to wait for it.
func (r *syncRing) drain(fd uintptr) bool {
	var n uint64
	_, _, errno := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&n)), 8)
	return errno != unix.EAGAIN
}

// errRingBroken: the ring failed to take or return a write and its
// fsync; the caller writes and calls fdatasync itself.
var errRingBroken = errors.New("io_uring refused the write and fsync")

// writeSync writes b at off in the file fd and then fdatasyncs it, both
// done by the kernel while the caller's goroutine waits on Go's poller
// (the write linked before the sync, so the sync runs only after a whole
// write). It returns how much was written and the write's or the
// fdatasync's error, errShortWrite when the write stopped short (a full
// disk: the caller's own write then says why), or errRingBroken when the
// ring itself failed, after which the ring must not be used again.
func (r *syncRing) writeSync(fd int, b []byte, off int64) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	start := atomic.LoadUint32(r.sqTail)
	tail := start
	if len(b) > 0 {
		r.push(tail, ringSQE{opcode: ringOpWrite, flags: ringLink, fd: int32(fd), off: uint64(off), addr: uint64(uintptr(unsafe.Pointer(&b[0]))), len: uint32(len(b)), userData: 1})
		tail++
	}
	r.push(tail, ringSQE{opcode: ringOpFsync, fd: int32(fd), fsyncFlags: ringFsyncDatasync, userData: 2})
	tail++
	want := tail - start
	atomic.StoreUint32(r.sqTail, tail)
	for {
		// Entering returns once the kernel has taken the entries; the
		// fsync always runs on a worker of its own.
		n, _, errno := unix.RawSyscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(want), 0, 0, 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 || uint32(n) != want {
			return 0, errRingBroken
		}
		break
	}
	var (
		written int
		err     error
	)
	for got := uint32(0); got < want; {
		head := atomic.LoadUint32(r.cqHead)
		if head == atomic.LoadUint32(r.cqTail) {
			if r.rc.Read(r.waitF) != nil {
				return 0, errRingBroken
			}
			continue
		}
		cqe := (*ringCQE)(unsafe.Add(r.cqes, uintptr(head&atomic.LoadUint32(r.cqMask))*unsafe.Sizeof(ringCQE{})))
		res, which := cqe.res, cqe.userData
		atomic.StoreUint32(r.cqHead, head+1)
		got++
		switch {
		case which == 1 && res >= 0:
			if written = int(res); written != len(b) {
				err = errShortWrite // the sync comes back canceled
			}
		case res < 0 && err == nil:
			err = syscall.Errno(-res)
		}
	}
	runtime.KeepAlive(b)
	return written, err
}

// errShortWrite: the ring's write stopped short.
var errShortWrite = errors.New("io_uring wrote short")

// push fills the submission entry at tail.
func (r *syncRing) push(tail uint32, e ringSQE) {
	i := tail & atomic.LoadUint32(r.sqMask)
	*(*ringSQE)(unsafe.Pointer(&r.sqes[uintptr(i)*unsafe.Sizeof(ringSQE{})])) = e
	*(*uint32)(unsafe.Add(unsafe.Pointer(r.sqArray), uintptr(i)*4)) = i
}

func (r *syncRing) close() {
	if r.ev != nil {
		r.ev.Close()
	}
	for _, m := range [][]byte{r.sq, r.cq, r.sqes} {
		if m != nil {
			unix.Munmap(m)
		}
	}
	unix.Close(r.fd)
}
