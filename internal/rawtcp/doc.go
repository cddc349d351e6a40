// Package rawtcp serves TCP connections whose reads and writes are raw
// system calls, so that Go's scheduler is not told of them.
//
// A Go read or write on a socket enters the scheduler's system-call state
// even though the socket is non-blocking and the call cannot sleep. On
// entering, a process whose one P had gone idle wakes the runtime's monitor
// (sysmon), which then polls every 20 µs for a while; a call that outlasts
// a tick of it has its P handed to another thread. A node serving HTTP
// goes idle and busy again between every few requests, so most requests
// paid for a monitor wakeup or two: on bench/kv's 5-node loopback cluster
// the monitor's sleeps were half of a node's context switches
// (BENCHMARKS.md, "Session 10 (issue 15)"). The UDP runtime's recvmmsg
// and sendmmsg are raw for the same reason (package runtime, conn_linux.go).
//
// EAGAIN still hands the waiting to Go's poller, through the socket's
// RawConn, so deadlines, Close and the rest of net.Conn behave as on a
// *net.TCPConn, whose other methods a Conn keeps.
package rawtcp
