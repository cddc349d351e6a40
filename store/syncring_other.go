//go:build !linux

package store

import "errors"

// syncRing is io_uring's, on Linux only: elsewhere the log writes and
// calls fdatasync itself.
type syncRing struct{}

var (
	errRingBroken = errors.New("no io_uring here")
	errShortWrite = errors.New("io_uring wrote short")
)

func newSyncRing() (*syncRing, error)                       { return nil, errRingBroken }
func (*syncRing) writeSync(int, []byte, int64) (int, error) { return 0, errRingBroken }
func (*syncRing) close()                                    {}
