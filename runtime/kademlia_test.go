//go:build unix

package runtime

import (
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/internal/cputime"
	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/seal"
)

// BenchmarkServeKademlia measures a Kademlia node serving pings: a client
// sends windows of 32 BEP 5 ping queries over loopback with sendmmsg and
// reads the answers with recvmmsg. ns/op is the wall time per answered
// ping; cpu-ns/ping is the CPU time of the whole process (client and
// server) per answered ping, an upper bound on the server's share.
func BenchmarkServeKademlia(b *testing.B) { serveKademlia(b, false) }

// BenchmarkServeKademliaSealed is BenchmarkServeKademlia on a private
// network with a network key: the client seals each query as it sends it
// and opens each answer, the server opens and seals in its batches. Both
// ends' sealing is in cpu-ns/ping.
func BenchmarkServeKademliaSealed(b *testing.B) { serveKademlia(b, true) }

func serveKademlia(b *testing.B, sealed bool) {
	kc := kademlia.DefaultConfig()
	kc.TrustLoopback = true // every query comes from 127.0.0.1
	kc.Network = "mainline"
	var opts Options
	var client *seal.Sealer
	if sealed {
		kc.Network = "bench"
		ring, err := seal.NewKeyring(make([]byte, seal.KeySize))
		if err != nil {
			b.Fatal(err)
		}
		opts.Sealer = seal.New(ring, id.FromString("server"), seal.Config{})
		client = seal.New(ring, id.FromString("client"), seal.Config{})
	}
	srv := New(listen(b), kademlia.New(kc, time.Now()), opts)
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
		if sealed {
			q.Net = []byte("bench")
		}
		buf := q.Append(nil)
		out[i] = message{buf: buf, n: len(buf), addr: srv.Addr()}
		in[i].buf = make([]byte, 256)
	}
	plain := make([][]byte, window)
	for i := range out {
		plain[i] = out[i].buf
		out[i].buf = make([]byte, 0, len(plain[i])+seal.Overhead)
	}
	cpu0 := cputime.Used()
	b.ReportAllocs()
	b.ResetTimer()
	for sent := 0; sent < b.N; {
		k := min(window, b.N-sent)
		for i := range out[:k] {
			if sealed {
				out[i].buf = client.Seal(out[i].buf[:0], plain[i], time.Now())
			} else {
				out[i].buf = plain[i]
			}
			out[i].n = len(out[i].buf)
		}
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
				p := in[j].buf[:in[j].n]
				if sealed {
					var err error
					if p, _, err = client.Open(p, time.Now()); err != nil {
						b.Fatalf("answer does not open: %v", err)
					}
				}
				if err := r.Decode(p); err != nil || r.Y != krpc.Response {
					b.Fatalf("bad answer %q: %v", p, err)
				}
			}
			got += m
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(cputime.Used()-cpu0)/float64(b.N), "cpu-ns/ping")
}
