//go:build !linux

package runtime

import "net"

// newBatchConn returns the portable batchConn: platforms without
// recvmmsg/sendmmsg read and write one datagram per system call.
func newBatchConn(c *net.UDPConn, batch int) batchConn { return singleConn{c} }
