//go:build unix

package runtime

import (
	"syscall"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/krpc"
)

// BenchmarkServeKademlia measures a Kademlia node serving pings: a client
// sends windows of 32 BEP 5 ping queries over loopback with sendmmsg and
// reads the answers with recvmmsg. ns/op is the wall time per answered
// ping; cpu-ns/ping is the CPU time of the whole process (client and
// server) per answered ping, an upper bound on the server's share.
func BenchmarkServeKademlia(b *testing.B) {
	kc := kademlia.DefaultConfig()
	kc.TrustLoopback = true // every query comes from 127.0.0.1
	kc.Network = "mainline"
	srv := New(listen(b), kademlia.New(kc, time.Now()), Options{})
	defer srv.Close()
	c := listen(b)
	defer c.Close()
	c.SetReadBuffer(1 << 20)
	bc := newBatchConn(c, 32)
	const window = 32
	out := make([]message, window)
	in := make([]message, window)
	for i := range out {
		q := krpc.Msg{T: []byte{'p', byte(i)}, Y: krpc.Query, Q: krpc.MethodPing}
		q.A.Has = krpc.HasID
		q.A.ID = id.FromString("client")
		buf := q.Append(nil)
		out[i] = message{buf: buf, n: len(buf), addr: srv.Addr()}
		in[i].buf = make([]byte, 256)
	}
	cpu0 := cpuTime()
	b.ReportAllocs()
	b.ResetTimer()
	for sent := 0; sent < b.N; {
		k := min(window, b.N-sent)
		if err := bc.writeBatch(out[:k]); err != nil {
			b.Fatal(err)
		}
		sent += k
		for got := 0; got < k; {
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			m, err := bc.readBatch(in)
			if err != nil {
				b.Fatalf("after %d of %d: %v", got, k, err)
			}
			for j := range m {
				var r krpc.Msg
				if err := r.Decode(in[j].buf[:in[j].n]); err != nil || r.Y != krpc.Response {
					b.Fatalf("bad answer %q: %v", in[j].buf[:in[j].n], err)
				}
			}
			got += m
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/ping")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
