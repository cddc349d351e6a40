package krpc_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
)

var (
	pingQuery     = []byte("d1:ad2:id20:" + idA + "e1:q4:ping1:t2:aa1:v4:DK\x00\x011:y1:qe")
	findNodeQuery = []byte("d1:ad2:id20:" + idA + "6:target20:" + idM + "4:wantl2:n4ee1:q9:find_node1:t2:aa1:v4:DK\x00\x011:y1:qe")
	// getPeersResponse8 is a get_peers response with a token and 8 nodes.
	getPeersResponse8 = []byte("d2:ip6:\x7f\x00\x00\x01\x1a\xe11:rd2:id20:" + id0 + "5:nodes208:" + strings.Repeat(node26, 8) +
		"5:token8:aoeusnthe1:t2:aa1:v4:DK\x00\x011:y1:re")
)

// TestZeroAllocs checks the promise the engine's hot path relies on: once
// a Msg has been used, decoding queries and responses allocates nothing,
// and neither does encoding into a buffer with room.
func TestZeroAllocs(t *testing.T) {
	packets := map[string][]byte{
		"ping":                pingQuery,
		"find_node":           findNodeQuery,
		"get_peers response":  getPeersResponse8,
		"get_peers values":    []byte("d1:rd2:id20:" + idA + "5:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re"),
		"sample_infohashes r": []byte("d1:rd2:id20:" + idM + "8:intervali21600e3:numi300e7:samples40:" + idA + id0 + "e1:t2:aa1:y1:re"),
		"put mutable":         []byte("d1:ad3:casi0e2:id20:" + idA + "1:k32:" + bep44Pub + "4:salt6:foobar3:seqi1e3:sig64:" + bep44Sig + "5:token2:tk1:v12:Hello World!e1:q3:put1:t2:aa1:y1:qe"),
		"error":               []byte("d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee"),
	}
	for name, p := range packets {
		var m krpc.Msg
		if err := m.Decode(p); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if n := testing.AllocsPerRun(100, func() { _ = m.Decode(p) }); n != 0 {
			t.Errorf("Decode %s: %v allocations, want 0", name, n)
		}
		buf := make([]byte, 0, 2048)
		if n := testing.AllocsPerRun(100, func() { buf = m.Append(buf[:0]) }); n != 0 {
			t.Errorf("Append %s: %v allocations, want 0", name, n)
		}
	}
}

func benchDecode(b *testing.B, p []byte) {
	var m krpc.Msg
	if err := m.Decode(p); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		if err := m.Decode(p); err != nil {
			b.Fatal(err)
		}
	}
}

func benchEncode(b *testing.B, p []byte) {
	var m krpc.Msg
	if err := m.Decode(p); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 2048)
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		buf = m.Append(buf[:0])
	}
}

func BenchmarkDecodePing(b *testing.B)             { benchDecode(b, pingQuery) }
func BenchmarkDecodeFindNodeQuery(b *testing.B)    { benchDecode(b, findNodeQuery) }
func BenchmarkDecodeGetPeersResponse(b *testing.B) { benchDecode(b, getPeersResponse8) }
func BenchmarkEncodePing(b *testing.B)             { benchEncode(b, pingQuery) }
func BenchmarkEncodeFindNodeQuery(b *testing.B)    { benchEncode(b, findNodeQuery) }
func BenchmarkEncodeGetPeersResponse(b *testing.B) { benchEncode(b, getPeersResponse8) }

// BenchmarkDecodeGarbage measures the cost of rejecting a packet, which is
// what a flood of junk costs a node.
func BenchmarkDecodeGarbage(b *testing.B) {
	p := []byte("d1:ad2:id21:" + idA + "xe1:q4:ping1:t2:aa1:y1:qe")
	var m krpc.Msg
	b.ReportAllocs()
	for b.Loop() {
		if err := m.Decode(p); err == nil {
			b.Fatal("decoded a 21-byte id")
		}
	}
}

func ExampleMsg_Append() {
	m := krpc.Msg{
		T: []byte("aa"),
		Y: krpc.Query,
		Q: krpc.MethodFindNode,
		A: krpc.Args{Has: krpc.HasID | krpc.HasTarget, ID: id.ID([]byte(idA)), Target: id.ID([]byte(idM))},
	}
	fmt.Printf("%s\n", m.Append(nil))
	// Output: d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q9:find_node1:t2:aa1:y1:qe
}

func ExampleMsg_Decode() {
	var m krpc.Msg
	err := m.Decode([]byte("d1:rd2:id20:" + id0 + "5:nodes26:" + node26 + "e1:t2:aa1:y1:re"))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, n := range m.R.Nodes {
		fmt.Println(n.Addr, n.ID)
	}
	fmt.Println("missing:", m.Missing())
	// Output:
	// 127.0.0.1:6881 303132333435363738396162636465666768696a
	// missing: none
}
