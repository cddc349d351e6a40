package krpc_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/krpc"
)

// The ids of BEP 5's examples.
const (
	idA = "abcdefghij0123456789"
	idM = "mnopqrstuvwxyz123456"
	id0 = "0123456789abcdefghij"
)

func idOf(s string) id.ID {
	x, ok := id.FromBytes([]byte(s))
	if !ok {
		panic("not 20 bytes: " + s)
	}
	return x
}

// bloomPe and bloomSd are BEP 33 filters: 256 bytes, any content.
var (
	bloomPe = strings.Repeat("\x01", 256)
	bloomSd = strings.Repeat("\x80\x00", 128)
)

// node26 is a compact IPv4 node: id0 at 127.0.0.1:6881.
const node26 = id0 + "\x7f\x00\x00\x01\x1a\xe1"

// node38 is a compact IPv6 node: idM at [::1]:6881.
const node38 = idM + "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x1a\xe1"

var (
	addr4 = netip.MustParseAddrPort("127.0.0.1:6881")
	addr6 = netip.MustParseAddrPort("[::1]:6881")
)

// BEP 44's mutable item example: "Hello World!" signed with salt "foobar"
// and seq 1. The key is derived from a fixed seed so the test is repeatable.
var (
	bep44Key = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	bep44Pub = string(bep44Key.Public().(ed25519.PublicKey))
	bep44Sig = string(ed25519.Sign(bep44Key, []byte("4:salt6:foobar3:seqi1e1:v12:Hello World!")))
)

type decodeCase struct {
	name string
	in   string
	// canonical is the expected output of Append; empty means in itself.
	canonical string
	want      krpc.Msg
}

func decodeCases() []decodeCase {
	return []decodeCase{
		// BEP 5.
		{name: "bep5 ping query",
			in: "d1:ad2:id20:" + idA + "e1:q4:ping1:t2:aa1:y1:qe",
			want: krpc.Msg{T: []byte("aa"), Y: krpc.Query, Q: krpc.MethodPing, QName: []byte("ping"),
				A: krpc.Args{Has: krpc.HasID, ID: idOf(idA)}}},
		{name: "bep5 ping response",
			in:   "d1:rd2:id20:" + idM + "e1:t2:aa1:y1:re",
			want: krpc.Msg{T: []byte("aa"), Y: krpc.Response, R: krpc.Return{Has: krpc.HasID, ID: idOf(idM)}}},
		{name: "bep5 error",
			in:   "d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee",
			want: krpc.Msg{T: []byte("aa"), Y: krpc.Error, E: krpc.KRPCError{Code: 201, Msg: []byte("A Generic Error Ocurred")}}},
		{name: "bep5 find_node query",
			in: "d1:ad2:id20:" + idA + "6:target20:" + idM + "e1:q9:find_node1:t2:aa1:y1:qe",
			want: krpc.Msg{T: []byte("aa"), Y: krpc.Query, Q: krpc.MethodFindNode, QName: []byte("find_node"),
				A: krpc.Args{Has: krpc.HasID | krpc.HasTarget, ID: idOf(idA), Target: idOf(idM)}}},
		{name: "bep5 find_node response",
			in: "d1:rd2:id20:" + id0 + "5:nodes26:" + node26 + "e1:t2:aa1:y1:re",
			want: krpc.Msg{T: []byte("aa"), Y: krpc.Response, R: krpc.Return{Has: krpc.HasID | krpc.HasNodes, ID: idOf(id0),
				Nodes: []krpc.NodeInfo{{ID: idOf(id0), Addr: addr4}}}}},
		{name: "bep5 get_peers query",
			in: "d1:ad2:id20:" + idA + "9:info_hash20:" + idM + "e1:q9:get_peers1:t2:aa1:y1:qe",
			want: krpc.Msg{T: []byte("aa"), Y: krpc.Query, Q: krpc.MethodGetPeers, QName: []byte("get_peers"),
				A: krpc.Args{Has: krpc.HasID | krpc.HasInfoHash, ID: idOf(idA), InfoHash: idOf(idM)}}},
		{name: "bep5 get_peers response with peers",
			in: "d1:rd2:id20:" + idA + "5:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re",
			want: krpc.Msg{T: []byte("aa"), Y: krpc.Response, R: krpc.Return{
				Has: krpc.HasID | krpc.HasToken | krpc.HasValues, ID: idOf(idA), Token: []byte("aoeusnth"),
				Values: []netip.AddrPort{
					netip.AddrPortFrom(netip.AddrFrom4([4]byte{'a', 'x', 'j', 'e'}), '.'<<8|'u'),
					netip.AddrPortFrom(netip.AddrFrom4([4]byte{'i', 'd', 'h', 't'}), 'n'<<8|'m'),
				}}}},
		{name: "bep5 get_peers response with nodes",
			in: "d1:rd2:id20:" + idA + "5:nodes52:" + node26 + node26 + "5:token8:aoeusnthe1:t2:aa1:y1:re",
			want: krpc.Msg{T: []byte("aa"), Y: krpc.Response, R: krpc.Return{
				Has: krpc.HasID | krpc.HasNodes | krpc.HasToken, ID: idOf(idA), Token: []byte("aoeusnth"),
				Nodes: []krpc.NodeInfo{{ID: idOf(id0), Addr: addr4}, {ID: idOf(id0), Addr: addr4}}}}},
		{name: "bep5 announce_peer query",
			in: "d1:ad2:id20:" + idA + "12:implied_porti1e9:info_hash20:" + idM + "4:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe",
			want: krpc.Msg{T: []byte("aa"), Y: krpc.Query, Q: krpc.MethodAnnouncePeer, QName: []byte("announce_peer"),
				A: krpc.Args{Has: krpc.HasID | krpc.HasImpliedPort | krpc.HasInfoHash | krpc.HasPort | krpc.HasToken,
					ID: idOf(idA), ImpliedPort: true, InfoHash: idOf(idM), Port: 6881, Token: []byte("aoeusnth")}}},
		{name: "bep5 announce_peer response",
			in:   "d1:rd2:id20:" + idM + "e1:t2:aa1:y1:re",
			want: krpc.Msg{T: []byte("aa"), Y: krpc.Response, R: krpc.Return{Has: krpc.HasID, ID: idOf(idM)}}},
		{name: "bep5 error 204 with client version",
			in:   "d1:eli204e14:Method Unknowne1:t2:aa1:v4:LT\x01\x021:y1:ee",
			want: krpc.Msg{T: []byte("aa"), Y: krpc.Error, V: []byte("LT\x01\x02"), E: krpc.KRPCError{Code: 204, Msg: []byte("Method Unknown")}}},

		// BEP 32.
		{name: "bep32 find_node want n4 n6",
			in: "d1:ad2:id20:" + idA + "6:target20:" + idM + "4:wantl2:n42:n6ee1:q9:find_node1:t2:aa1:y1:qe",
			want: krpc.Msg{T: []byte("aa"), Y: krpc.Query, Q: krpc.MethodFindNode, QName: []byte("find_node"),
				A: krpc.Args{Has: krpc.HasID | krpc.HasTarget | krpc.HasWant, ID: idOf(idA), Target: idOf(idM), Want: krpc.WantN4 | krpc.WantN6}}},
		{name: "bep32 response with nodes and nodes6",
			in: "d1:rd2:id20:" + id0 + "5:nodes26:" + node26 + "6:nodes638:" + node38 + "e1:t2:aa1:y1:re",
			want: krpc.Msg{T: []byte("aa"), Y: krpc.Response, R: krpc.Return{Has: krpc.HasID | krpc.HasNodes | krpc.HasNodes6, ID: idOf(id0),
				Nodes:  []krpc.NodeInfo{{ID: idOf(id0), Addr: addr4}},
				Nodes6: []krpc.NodeInfo{{ID: idOf(idM), Addr: addr6}}}}},
		{name: "bep32 get_peers response with IPv6 peer",
			in: "d1:rd2:id20:" + idA + "5:token2:tk6:valuesl18:\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x1a\xe1ee1:t2:aa1:y1:re",
			want: krpc.Msg{T: []byte("aa"), Y: krpc.Response, R: krpc.Return{Has: krpc.HasID | krpc.HasToken | krpc.HasValues,
				ID: idOf(idA), Token: []byte("tk"), Values: []netip.AddrPort{addr6}}}},

		// BEP 33.
		{name: "bep33 get_peers scrape noseed",
			in: "d1:ad2:id20:" + idA + "9:info_hash20:" + idM + "6:noseedi1e6:scrapei1ee1:q9:get_peers1:t2:aa1:y1:qe",
			want: krpc.Msg{T: []byte("aa"), Y: krpc.Query, Q: krpc.MethodGetPeers, QName: []byte("get_peers"),
				A: krpc.Args{Has: krpc.HasID | krpc.HasInfoHash | krpc.HasNoSeed | krpc.HasScrape, ID: idOf(idA), InfoHash: idOf(idM),
					NoSeed: true, Scrape: true}}},
		{name: "bep33 announce_peer seed",
			in: "d1:ad2:id20:" + idA + "9:info_hash20:" + idM + "4:porti6881e4:seedi1e5:token2:tke1:q13:announce_peer1:t2:aa1:y1:qe",
			want: krpc.Msg{T: []byte("aa"), Y: krpc.Query, Q: krpc.MethodAnnouncePeer, QName: []byte("announce_peer"),
				A: krpc.Args{Has: krpc.HasID | krpc.HasInfoHash | krpc.HasPort | krpc.HasSeed | krpc.HasToken,
					ID: idOf(idA), InfoHash: idOf(idM), Port: 6881, Seed: true, Token: []byte("tk")}}},
		{name: "bep33 get_peers response with filters",
			in: "d1:rd4:BFpe256:" + bloomPe + "4:BFsd256:" + bloomSd + "2:id20:" + idA + "5:token2:tke1:t2:aa1:y1:re",
			want: krpc.Msg{T: []byte("aa"), Y: krpc.Response, R: krpc.Return{Has: krpc.HasBFpe | krpc.HasBFsd | krpc.HasID | krpc.HasToken,
				ID: idOf(idA), Token: []byte("tk"), BFpe: []byte(bloomPe), BFsd: []byte(bloomSd)}}},

		// BEP 42.
		{name: "bep42 response with ip",
			in:   "d2:ip6:\x7f\x00\x00\x01\x1a\xe11:rd2:id20:" + idM + "e1:t2:aa1:y1:re",
			want: krpc.Msg{T: []byte("aa"), Y: krpc.Response, IP: addr4, R: krpc.Return{Has: krpc.HasID, ID: idOf(idM)}}},
		{name: "bep42 response with IPv6 ip",
			in:   "d2:ip18:\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x1a\xe11:rd2:id20:" + idM + "e1:t2:aa1:y1:re",
			want: krpc.Msg{T: []byte("aa"), Y: krpc.Response, IP: addr6, R: krpc.Return{Has: krpc.HasID, ID: idOf(idM)}}},

		// BEP 43.
		{name: "bep43 read-only ping",
			in: "d1:ad2:id20:" + idA + "e1:q4:ping2:roi1e1:t2:aa1:y1:qe",
			want: krpc.Msg{T: []byte("aa"), Y: krpc.Query, Q: krpc.MethodPing, QName: []byte("ping"), RO: true,
				A: krpc.Args{Has: krpc.HasID, ID: idOf(idA)}}},

		// BEP 44.
		{name: "bep44 get query",
			in: "d1:ad2:id20:" + idA + "3:seqi4e6:target20:" + idM + "e1:q3:get1:t2:aa1:y1:qe",
			want: krpc.Msg{T: []byte("aa"), Y: krpc.Query, Q: krpc.MethodGet, QName: []byte("get"),
				A: krpc.Args{Has: krpc.HasID | krpc.HasSeq | krpc.HasTarget, ID: idOf(idA), Seq: 4, Target: idOf(idM)}}},
		{name: "bep44 get response immutable",
			in: "d1:rd2:id20:" + idM + "5:nodes26:" + node26 + "5:token2:tk1:v12:Hello World!e1:t2:aa1:y1:re",
			want: krpc.Msg{T: []byte("aa"), Y: krpc.Response, R: krpc.Return{
				Has: krpc.HasID | krpc.HasNodes | krpc.HasToken | krpc.HasV, ID: idOf(idM), Token: []byte("tk"),
				Nodes: []krpc.NodeInfo{{ID: idOf(id0), Addr: addr4}}, V: []byte("12:Hello World!")}}},
		{name: "bep44 put immutable",
			in: "d1:ad2:id20:" + idA + "5:token2:tk1:vd1:ai1e1:bli2e1:ceee1:q3:put1:t2:aa1:y1:qe",
			want: krpc.Msg{T: []byte("aa"), Y: krpc.Query, Q: krpc.MethodPut, QName: []byte("put"),
				A: krpc.Args{Has: krpc.HasID | krpc.HasToken | krpc.HasV, ID: idOf(idA), Token: []byte("tk"), V: []byte("d1:ai1e1:bli2e1:cee")}}},
		{name: "bep44 put mutable with salt and cas",
			in: "d1:ad3:casi0e2:id20:" + idA + "1:k32:" + bep44Pub + "4:salt6:foobar3:seqi1e3:sig64:" + bep44Sig +
				"5:token2:tk1:v12:Hello World!e1:q3:put1:t2:aa1:y1:qe",
			want: krpc.Msg{T: []byte("aa"), Y: krpc.Query, Q: krpc.MethodPut, QName: []byte("put"),
				A: krpc.Args{Has: krpc.HasCAS | krpc.HasID | krpc.HasK | krpc.HasSalt | krpc.HasSeq | krpc.HasSig | krpc.HasToken | krpc.HasV,
					ID: idOf(idA), K: []byte(bep44Pub), Salt: []byte("foobar"), Seq: 1, Sig: []byte(bep44Sig),
					Token: []byte("tk"), V: []byte("12:Hello World!")}}},
		{name: "bep44 get response mutable",
			in: "d1:rd2:id20:" + idM + "1:k32:" + bep44Pub + "3:seqi1e3:sig64:" + bep44Sig + "5:token2:tk1:v12:Hello World!e1:t2:aa1:y1:re",
			want: krpc.Msg{T: []byte("aa"), Y: krpc.Response, R: krpc.Return{
				Has: krpc.HasID | krpc.HasK | krpc.HasSeq | krpc.HasSig | krpc.HasToken | krpc.HasV, ID: idOf(idM),
				K: []byte(bep44Pub), Seq: 1, Sig: []byte(bep44Sig), Token: []byte("tk"), V: []byte("12:Hello World!")}}},
		{name: "bep44 error 302",
			in:   "d1:eli302e25:sequence number less thane1:t2:aa1:y1:ee",
			want: krpc.Msg{T: []byte("aa"), Y: krpc.Error, E: krpc.KRPCError{Code: 302, Msg: []byte("sequence number less than")}}},

		// BEP 51.
		{name: "bep51 sample_infohashes query",
			in: "d1:ad2:id20:" + idA + "6:target20:" + idM + "e1:q17:sample_infohashes1:t2:aa1:y1:qe",
			want: krpc.Msg{T: []byte("aa"), Y: krpc.Query, Q: krpc.MethodSampleInfohashes, QName: []byte("sample_infohashes"),
				A: krpc.Args{Has: krpc.HasID | krpc.HasTarget, ID: idOf(idA), Target: idOf(idM)}}},
		{name: "bep51 sample_infohashes response",
			in: "d1:rd2:id20:" + idM + "8:intervali21600e5:nodes26:" + node26 + "3:numi300e7:samples40:" + idA + id0 + "e1:t2:aa1:y1:re",
			want: krpc.Msg{T: []byte("aa"), Y: krpc.Response, R: krpc.Return{
				Has: krpc.HasID | krpc.HasInterval | krpc.HasNodes | krpc.HasNum | krpc.HasSamples, ID: idOf(idM),
				Interval: 21600, Num: 300, Nodes: []krpc.NodeInfo{{ID: idOf(id0), Addr: addr4}},
				Samples: []id.ID{idOf(idA), idOf(id0)}}}},

		// dhtkit's extensions and sloppy senders.
		{name: "unknown method with private network",
			in: "d1:ad2:id20:" + idA + "e2:nw6:dhtkit1:q5:kvput1:t4:\x00\x01\x02\x031:y1:qe",
			want: krpc.Msg{T: []byte("\x00\x01\x02\x03"), Y: krpc.Query, QName: []byte("kvput"), Net: []byte("dhtkit"),
				A: krpc.Args{Has: krpc.HasID, ID: idOf(idA)}}},
		{name: "unsorted keys and unknown keys",
			in:        "d1:y1:q1:t2:aa1:q4:ping5:extrad1:xli1eee1:ad4:zzzz0:2:id20:" + idA + "ee",
			canonical: "d1:ad2:id20:" + idA + "e1:q4:ping1:t2:aa1:y1:qe",
			want: krpc.Msg{T: []byte("aa"), Y: krpc.Query, Q: krpc.MethodPing, QName: []byte("ping"),
				A: krpc.Args{Has: krpc.HasID, ID: idOf(idA)}}},
		{name: "response carrying a stray a",
			in:        "d1:ad2:id21:" + idA + "xe1:rd2:id20:" + idM + "e1:t2:aa1:y1:re",
			canonical: "d1:rd2:id20:" + idM + "e1:t2:aa1:y1:re",
			want:      krpc.Msg{T: []byte("aa"), Y: krpc.Response, R: krpc.Return{Has: krpc.HasID, ID: idOf(idM)}}},
		{name: "error with extra elements",
			in:        "d1:eli202e6:Serveri1ee1:t0:1:y1:ee",
			canonical: "d1:eli202e6:Servere1:t0:1:y1:ee",
			want:      krpc.Msg{T: []byte{}, Y: krpc.Error, E: krpc.KRPCError{Code: 202, Msg: []byte("Server")}}},
		{name: "ro zero is not read-only",
			in:        "d1:rd2:id20:" + idM + "e2:roi0e1:t2:aa1:y1:re",
			canonical: "d1:rd2:id20:" + idM + "e1:t2:aa1:y1:re",
			want:      krpc.Msg{T: []byte("aa"), Y: krpc.Response, R: krpc.Return{Has: krpc.HasID, ID: idOf(idM)}}},
		{name: "IPv4-mapped values are unmapped",
			in:        "d1:rd2:id20:" + idA + "6:valuesl18:\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\x7f\x00\x00\x01\x1a\xe1ee1:t2:aa1:y1:re",
			canonical: "d1:rd2:id20:" + idA + "6:valuesl6:\x7f\x00\x00\x01\x1a\xe1ee1:t2:aa1:y1:re",
			want: krpc.Msg{T: []byte("aa"), Y: krpc.Response, R: krpc.Return{Has: krpc.HasID | krpc.HasValues, ID: idOf(idA),
				Values: []netip.AddrPort{addr4}}}},
	}
}

// equalMsg compares two messages by content.
func equalMsg(a, b *krpc.Msg) bool {
	return reflect.DeepEqual(normalize(a), normalize(b))
}

// normalize returns a copy of m whose empty slices are nil, except for the
// fields where nil means absent (V, Net), so that messages decoded into
// reused and fresh Msgs compare equal.
func normalize(m *krpc.Msg) krpc.Msg {
	c := *m
	if len(c.R.Nodes) == 0 {
		c.R.Nodes = nil
	}
	if len(c.R.Nodes6) == 0 {
		c.R.Nodes6 = nil
	}
	if len(c.R.Values) == 0 {
		c.R.Values = nil
	}
	if len(c.R.Samples) == 0 {
		c.R.Samples = nil
	}
	return c
}

func TestDecodeAppend(t *testing.T) {
	var reused krpc.Msg // decoding every case into one Msg checks that Reset clears all
	for _, tc := range decodeCases() {
		t.Run(tc.name, func(t *testing.T) {
			var m krpc.Msg
			if err := m.Decode([]byte(tc.in)); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !equalMsg(&m, &tc.want) {
				t.Fatalf("Decode:\n got %+v\nwant %+v", m, tc.want)
			}
			if err := reused.Decode([]byte(tc.in)); err != nil {
				t.Fatalf("Decode into a reused Msg: %v", err)
			}
			if !equalMsg(&reused, &tc.want) {
				t.Fatalf("Decode into a reused Msg:\n got %+v\nwant %+v", reused, tc.want)
			}
			if missing := m.Missing(); missing != 0 {
				t.Errorf("Missing() = %b for a complete message", missing)
			}
			want := tc.canonical
			if want == "" {
				want = tc.in
			}
			if got := m.Append(nil); string(got) != want {
				t.Fatalf("Append:\n got %q\nwant %q", got, want)
			}
			// Append to a non-empty buffer keeps what was there.
			if got := m.Append([]byte("xyz")); string(got) != "xyz"+want {
				t.Fatalf("Append after a prefix: got %q", got)
			}
			// Encoding the expected message from scratch gives the same bytes.
			if got := tc.want.Append(nil); string(got) != want {
				t.Fatalf("Append of the literal message:\n got %q\nwant %q", got, want)
			}
		})
	}
}

func TestDecodeRefersIntoPacket(t *testing.T) {
	in := []byte("d1:ad2:id20:" + idA + "5:token2:tke1:q13:announce_peer1:t2:aa1:y1:qe")
	var m krpc.Msg
	if err := m.Decode(in); err != nil {
		t.Fatal(err)
	}
	in[bytes.Index(in, []byte("2:tk"))+2] = 'X'
	in[bytes.Index(in, []byte("1:t2:aa"))+5] = 'Y'
	if string(m.A.Token) != "Xk" || string(m.T) != "Ya" {
		t.Fatalf("token %q, t %q: want slices of the packet", m.A.Token, m.T)
	}
	// The slices are capped: appending to one cannot overwrite the packet.
	_ = append(m.T, 'Z')
	if in[bytes.Index(in, []byte("1:t2:Ya"))+7] != '1' {
		t.Fatal("append to m.T overwrote the packet")
	}
}

func TestMissing(t *testing.T) {
	tests := []struct {
		in   string
		want krpc.Field
	}{
		{"d1:ad2:id20:" + idA + "e1:q9:find_node1:t2:aa1:y1:qe", krpc.HasTarget},
		{"d1:ade1:q4:ping1:t2:aa1:y1:qe", krpc.HasID},
		{"d1:ad2:id20:" + idA + "e1:q9:get_peers1:t2:aa1:y1:qe", krpc.HasInfoHash},
		{"d1:ad2:id20:" + idA + "9:info_hash20:" + idM + "4:porti1ee1:q13:announce_peer1:t2:aa1:y1:qe", krpc.HasToken},
		{"d1:ad2:id20:" + idA + "9:info_hash20:" + idM + "5:token1:xe1:q13:announce_peer1:t2:aa1:y1:qe", krpc.HasPort},
		{"d1:ad2:id20:" + idA + "12:implied_porti1e9:info_hash20:" + idM + "5:token1:xe1:q13:announce_peer1:t2:aa1:y1:qe", 0},
		{"d1:ad2:id20:" + idA + "5:token1:xe1:q3:put1:t2:aa1:y1:qe", krpc.HasV},
		{"d1:ad2:id20:" + idA + "3:seqi1e5:token1:x1:v1:xe1:q3:put1:t2:aa1:y1:qe", krpc.HasK | krpc.HasSig},
		{"d1:ad2:id20:" + idA + "e1:q3:get1:t2:aa1:y1:qe", krpc.HasTarget},
		{"d1:ad2:id20:" + idA + "e1:q17:sample_infohashes1:t2:aa1:y1:qe", krpc.HasTarget},
		{"d1:ade1:q5:kvput1:t2:aa1:y1:qe", krpc.HasID},
		{"d1:rde1:t2:aa1:y1:re", krpc.HasID},
		{"d1:eli201e0:e1:t2:aa1:y1:ee", 0},
	}
	for _, tc := range tests {
		var m krpc.Msg
		if err := m.Decode([]byte(tc.in)); err != nil {
			t.Fatalf("Decode(%q): %v", tc.in, err)
		}
		if got := m.Missing(); got != tc.want {
			t.Errorf("Missing(%q) = %b, want %b", tc.in, got, tc.want)
		}
	}
}

type malformedCase struct {
	name string
	in   string
	want error
	// t is the transaction id Decode must still report, if any.
	t string
}

func malformedCases() []malformedCase {
	ping := func(args string) string { return "d1:ad" + args + "e1:q4:ping1:t2:aa1:y1:qe" }
	resp := func(ret string) string { return "d1:rd" + ret + "e1:t2:aa1:y1:re" }
	return []malformedCase{
		{name: "empty", in: "", want: krpc.ErrSyntax},
		{name: "garbage", in: "hello world", want: krpc.ErrSyntax},
		{name: "not a dictionary", in: "li1ee", want: krpc.ErrType},
		{name: "unterminated dictionary", in: "d", want: krpc.ErrSyntax},
		{name: "empty dictionary", in: "de", want: krpc.ErrMissing},
		{name: "trailing bytes", in: ping("2:id20:"+idA) + "x", want: krpc.ErrSyntax},
		{name: "two messages", in: ping("2:id20:"+idA) + ping("2:id20:"+idA), want: krpc.ErrSyntax},
		{name: "dictionary key not a string", in: "di1ei2ee", want: krpc.ErrSyntax},
		{name: "nested key not a string", in: "d1:ad" + "li1eei1e" + "ee", want: krpc.ErrSyntax},
		{name: "string longer than input", in: "d1:t5:ab", want: krpc.ErrSyntax},
		{name: "huge string length", in: "d1:t99999999999999999999999:ab", want: krpc.ErrSyntax},
		{name: "string length with leading zero", in: "d1:t02:aa1:y1:qe", want: krpc.ErrSyntax},
		{name: "negative string length", in: "d1:t-1:a1:y1:qe", want: krpc.ErrSyntax},
		{name: "integer with leading zero", in: "d1:ri01ee", want: krpc.ErrSyntax},
		{name: "negative zero", in: "d1:t2:aa2:roi-0e1:y1:re", want: krpc.ErrSyntax},
		{name: "empty integer", in: "d2:roie1:t2:aa1:y1:re", want: krpc.ErrSyntax},
		{name: "minus alone", in: "d2:roi-e1:t2:aa1:y1:re", want: krpc.ErrSyntax},
		{name: "unterminated integer", in: "d2:roi12", want: krpc.ErrSyntax},
		{name: "integer overflow", in: "d2:roi9223372036854775808e1:t2:aa1:y1:re", want: krpc.ErrRange},
		{name: "integer underflow", in: "d2:roi-9223372036854775809e1:t2:aa1:y1:re", want: krpc.ErrRange},
		{name: "oversized packet", in: "d1:t65600:" + strings.Repeat("x", 65600) + "1:y1:qe", want: krpc.ErrTooLarge},
		{name: "deeply nested unknown key", in: "d1:x" + strings.Repeat("l", 100) + strings.Repeat("e", 100) + "1:t2:aa1:y1:qe", want: krpc.ErrTooDeep},
		{name: "deeply nested v", in: ping("2:id20:" + idA + "1:v" + strings.Repeat("d1:x", 40) + "i1e" + strings.Repeat("e", 40)), want: krpc.ErrTooDeep},
		{name: "missing t", in: "d1:ad2:id20:" + idA + "e1:q4:ping1:y1:qe", want: krpc.ErrMissing},
		{name: "missing y", in: "d1:ad2:id20:" + idA + "e1:q4:ping1:t2:aae", want: krpc.ErrMissing, t: "aa"},
		{name: "missing q", in: "d1:ad2:id20:" + idA + "e1:t2:aa1:y1:qe", want: krpc.ErrMissing, t: "aa"},
		{name: "missing a", in: "d1:q4:ping1:t2:aa1:y1:qe", want: krpc.ErrMissing, t: "aa"},
		{name: "missing r", in: "d1:t2:aa1:y1:re", want: krpc.ErrMissing, t: "aa"},
		{name: "missing e", in: "d1:t2:aa1:y1:ee", want: krpc.ErrMissing, t: "aa"},
		{name: "e with one element", in: "d1:eli201ee1:t2:aa1:y1:ee", want: krpc.ErrMissing, t: "aa"},
		{name: "e not a list", in: "d1:ei201e1:t2:aa1:y1:ee", want: krpc.ErrType, t: "aa"},
		{name: "e code not an integer", in: "d1:el3:2013:abce1:t2:aa1:y1:ee", want: krpc.ErrType, t: "aa"},
		{name: "e message not a string", in: "d1:eli201ei1ee1:t2:aa1:y1:ee", want: krpc.ErrType, t: "aa"},
		{name: "unknown y", in: "d1:t2:aa1:y1:xe", want: krpc.ErrInvalid, t: "aa"},
		{name: "long y", in: "d1:t2:aa1:y2:qqe", want: krpc.ErrInvalid, t: "aa"},
		{name: "y not a string", in: "d1:t2:aa1:yi1ee", want: krpc.ErrType, t: "aa"},
		{name: "t not a string", in: "d1:ad2:id20:" + idA + "e1:q4:ping1:ti1e1:y1:qe", want: krpc.ErrType},
		{name: "q not a string", in: "d1:ad2:id20:" + idA + "e1:qi1e1:t2:aa1:y1:qe", want: krpc.ErrType, t: "aa"},
		{name: "a not a dictionary", in: "d1:ali1ee1:q4:ping1:t2:aa1:y1:qe", want: krpc.ErrType, t: "aa"},
		{name: "r not a dictionary", in: "d1:r2:id1:t2:aa1:y1:re", want: krpc.ErrType, t: "aa"},
		{name: "duplicate t", in: "d1:t2:aa1:t2:bb1:y1:re", want: krpc.ErrDuplicate, t: "aa"},
		{name: "duplicate stray a in a response", in: "d1:ade1:ade1:rd2:id20:" + idM + "e1:t2:aa1:y1:re", want: krpc.ErrDuplicate, t: "aa"},
		{name: "duplicate id", in: ping("2:id20:" + idA + "2:id20:" + idM), want: krpc.ErrDuplicate, t: "aa"},
		{name: "21-byte id", in: ping("2:id21:" + idA + "x"), want: krpc.ErrLength, t: "aa"},
		{name: "19-byte id", in: ping("2:id19:" + idA[:19]), want: krpc.ErrLength, t: "aa"},
		{name: "id not a string", in: ping("2:idi1e"), want: krpc.ErrType, t: "aa"},
		{name: "21-byte target", in: "d1:ad2:id20:" + idA + "6:target21:" + idM + "xe1:q9:find_node1:t2:aa1:y1:qe", want: krpc.ErrLength, t: "aa"},
		{name: "19-byte info_hash", in: "d1:ad2:id20:" + idA + "9:info_hash19:" + idM[:19] + "e1:q9:get_peers1:t2:aa1:y1:qe", want: krpc.ErrLength, t: "aa"},
		{name: "port too large", in: ping("2:id20:" + idA + "4:porti65536e"), want: krpc.ErrRange, t: "aa"},
		{name: "negative port", in: ping("2:id20:" + idA + "4:porti-1e"), want: krpc.ErrRange, t: "aa"},
		{name: "port not an integer", in: ping("2:id20:" + idA + "4:port4:6881"), want: krpc.ErrType, t: "aa"},
		{name: "want not a list", in: ping("2:id20:" + idA + "4:want2:n4"), want: krpc.ErrType, t: "aa"},
		{name: "want element not a string", in: ping("2:id20:" + idA + "4:wantli4ee"), want: krpc.ErrType, t: "aa"},
		{name: "31-byte k", in: ping("2:id20:" + idA + "1:k31:" + bep44Pub[:31]), want: krpc.ErrLength, t: "aa"},
		{name: "63-byte sig", in: ping("2:id20:" + idA + "3:sig63:" + bep44Sig[:63]), want: krpc.ErrLength, t: "aa"},
		{name: "malformed v", in: ping("2:id20:" + idA + "1:vi01e"), want: krpc.ErrSyntax},
		{name: "unterminated v", in: ping("2:id20:" + idA + "1:vl1:x"), want: krpc.ErrSyntax},
		{name: "bep5 nodes example is not 26 bytes", in: "d1:rd2:id20:" + id0 + "5:nodes9:def456...e1:t2:aa1:y1:re", want: krpc.ErrLength, t: "aa"},
		{name: "25-byte nodes", in: resp("2:id20:" + idA + "5:nodes25:" + node26[:25]), want: krpc.ErrLength, t: "aa"},
		{name: "27-byte nodes", in: resp("2:id20:" + idA + "5:nodes27:" + node26 + "x"), want: krpc.ErrLength, t: "aa"},
		{name: "26-byte nodes6", in: resp("2:id20:" + idA + "6:nodes626:" + node26), want: krpc.ErrLength, t: "aa"},
		{name: "nodes not a string", in: resp("2:id20:" + idA + "5:nodesl26:" + node26 + "e"), want: krpc.ErrType, t: "aa"},
		{name: "7-byte peer", in: resp("2:id20:" + idA + "6:valuesl7:abcdefge"), want: krpc.ErrLength, t: "aa"},
		{name: "peer not a string", in: resp("2:id20:" + idA + "6:valuesli1ee"), want: krpc.ErrType, t: "aa"},
		{name: "values not a list", in: resp("2:id20:" + idA + "6:values6:abcdef"), want: krpc.ErrType, t: "aa"},
		{name: "19-byte samples", in: resp("2:id20:" + idA + "7:samples19:" + idA[:19]), want: krpc.ErrLength, t: "aa"},
		{name: "21-byte response id", in: resp("2:id21:" + idA + "x"), want: krpc.ErrLength, t: "aa"},
		{name: "5-byte ip", in: "d2:ip5:abcde1:rd2:id20:" + idM + "e1:t2:aa1:y1:re", want: krpc.ErrLength, t: "aa"},
		{name: "ro not an integer", in: "d2:ro1:11:t2:aa1:y1:re", want: krpc.ErrType, t: "aa"},
		{name: "nul byte", in: "d1:t2:aa\x001:y1:re", want: krpc.ErrSyntax},
	}
}

func TestDecodeMalformed(t *testing.T) {
	for _, tc := range malformedCases() {
		t.Run(tc.name, func(t *testing.T) {
			var m krpc.Msg
			err := m.Decode([]byte(tc.in))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decode(%q) = %v, want %v", tc.in, err, tc.want)
			}
			var de *krpc.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %T is not a *DecodeError", err)
			}
			if de.Offset < 0 || de.Offset > len(tc.in) {
				t.Errorf("offset %d outside the packet of %d bytes", de.Offset, len(tc.in))
			}
			if tc.t != "" && string(m.T) != tc.t {
				t.Errorf("m.T = %q after the error, want %q", m.T, tc.t)
			}
		})
	}
}

// TestDecodeTruncated checks that every strict prefix of every valid message
// is rejected: bencode is prefix-free, so none of them is a message.
func TestDecodeTruncated(t *testing.T) {
	var m krpc.Msg
	for _, tc := range decodeCases() {
		for i := range len(tc.in) {
			if err := m.Decode([]byte(tc.in[:i])); err == nil {
				t.Fatalf("%s: prefix of %d bytes decoded without error", tc.name, i)
			}
		}
	}
}

func TestValidBencode(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want error
	}{
		{"12:Hello World!", 15, nil},
		{"i-42e", 5, nil},
		{"i0e", 3, nil},
		{"i-9223372036854775808e", 22, nil},
		{"le", 2, nil},
		{"d1:ai1e1:bl1:x1:yee", 19, nil},
		{"d1:bi1e1:ai2ee", 14, nil}, // unsorted keys are accepted
		{"0:", 2, nil},
		{"i1etrailing", 3, nil},
		{"", 0, krpc.ErrSyntax},
		{"x", 0, krpc.ErrSyntax},
		{"i01e", 0, krpc.ErrSyntax},
		{"i-0e", 0, krpc.ErrSyntax},
		{"i9223372036854775808e", 0, krpc.ErrRange},
		{"3:ab", 0, krpc.ErrSyntax},
		{"l", 0, krpc.ErrSyntax},
		{"di1e1:ae", 0, krpc.ErrSyntax},
		{"d1:ae", 0, krpc.ErrSyntax},
		{strings.Repeat("l", krpc.MaxDepth) + strings.Repeat("e", krpc.MaxDepth), 2 * krpc.MaxDepth, nil},
		{strings.Repeat("l", krpc.MaxDepth+1) + strings.Repeat("e", krpc.MaxDepth+1), 0, krpc.ErrTooDeep},
	}
	for _, tc := range tests {
		n, err := krpc.ValidBencode([]byte(tc.in))
		if !errors.Is(err, tc.want) || n != tc.n {
			t.Errorf("ValidBencode(%.40q) = %d, %v; want %d, %v", tc.in, n, err, tc.n, tc.want)
		}
	}
}

func TestCompactNodes(t *testing.T) {
	nodes := []krpc.NodeInfo{
		{ID: idOf(id0), Addr: addr4},
		{ID: idOf(idM), Addr: addr6},
		{ID: idOf(idA), Addr: netip.MustParseAddrPort("[::ffff:10.0.0.1]:1")},
		{ID: idOf(idA)}, // no address: cannot be encoded
	}
	b4 := krpc.AppendCompactNodes(nil, nodes)
	if want := node26 + idA + "\x0a\x00\x00\x01\x00\x01"; string(b4) != want {
		t.Fatalf("AppendCompactNodes = %q, want %q", b4, want)
	}
	got, err := krpc.ParseCompactNodes(nil, b4)
	if err != nil {
		t.Fatal(err)
	}
	want4 := []krpc.NodeInfo{nodes[0], {ID: idOf(idA), Addr: netip.MustParseAddrPort("10.0.0.1:1")}}
	if !reflect.DeepEqual(got, want4) {
		t.Fatalf("ParseCompactNodes = %v, want %v", got, want4)
	}
	b6 := krpc.AppendCompactNodes6(nil, nodes)
	if len(b6) != 3*krpc.CompactNode6Len {
		t.Fatalf("AppendCompactNodes6 wrote %d bytes, want %d", len(b6), 3*krpc.CompactNode6Len)
	}
	got, err = krpc.ParseCompactNodes6(got[:0], b6)
	if err != nil {
		t.Fatal(err)
	}
	if want6 := []krpc.NodeInfo{nodes[0], nodes[1], want4[1]}; !reflect.DeepEqual(got, want6) {
		t.Fatalf("ParseCompactNodes6 = %v, want %v", got, want6)
	}
	for _, n := range []int{1, 25, 27} {
		if _, err := krpc.ParseCompactNodes(nil, make([]byte, n)); !errors.Is(err, krpc.ErrLength) {
			t.Errorf("ParseCompactNodes of %d bytes: %v, want ErrLength", n, err)
		}
	}
	if _, err := krpc.ParseCompactNodes6(nil, make([]byte, 26)); !errors.Is(err, krpc.ErrLength) {
		t.Errorf("ParseCompactNodes6 of 26 bytes: %v, want ErrLength", err)
	}
	if b := krpc.AppendCompactNode(nil, nodes[1]); string(b) != node38 {
		t.Errorf("AppendCompactNode = %q, want %q", b, node38)
	}
	if b := krpc.AppendCompactNode([]byte("x"), nodes[3]); string(b) != "x" {
		t.Errorf("AppendCompactNode of an invalid address = %q, want nothing appended", b)
	}
}

func TestCompactAddr(t *testing.T) {
	tests := []struct {
		in   string
		want netip.AddrPort
		err  error
	}{
		{"\x7f\x00\x00\x01\x1a\xe1", addr4, nil},
		{"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x1a\xe1", addr6, nil},
		{"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\x7f\x00\x00\x01\x1a\xe1", addr4, nil},
		{"", netip.AddrPort{}, krpc.ErrLength},
		{"\x7f\x00\x00\x01\x1a", netip.AddrPort{}, krpc.ErrLength},
		{"\x7f\x00\x00\x01\x1a\xe1\x00", netip.AddrPort{}, krpc.ErrLength},
	}
	for _, tc := range tests {
		got, err := krpc.ParseCompactAddr([]byte(tc.in))
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("ParseCompactAddr(%q) = %v, %v; want %v, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
	if b := krpc.AppendCompactAddr(nil, netip.AddrPort{}); len(b) != 0 {
		t.Errorf("AppendCompactAddr of the zero AddrPort = %q, want nothing", b)
	}
}

// TestAppendSkipsUnencodable checks that Append never writes a length it
// does not fill, whatever the caller put in the message.
func TestAppendSkipsUnencodable(t *testing.T) {
	m := krpc.Msg{T: []byte("aa"), Y: krpc.Response, R: krpc.Return{
		Has:    krpc.HasID | krpc.HasNodes | krpc.HasNodes6 | krpc.HasValues,
		Nodes:  []krpc.NodeInfo{{ID: idOf(id0), Addr: addr4}, {ID: idOf(idM), Addr: addr6}, {}},
		Nodes6: []krpc.NodeInfo{{ID: idOf(idM), Addr: addr6}, {}},
		Values: []netip.AddrPort{addr4, {}, addr6},
	}}
	var got krpc.Msg
	if err := got.Decode(m.Append(nil)); err != nil {
		t.Fatalf("Decode(Append): %v", err)
	}
	if len(got.R.Nodes) != 1 || len(got.R.Nodes6) != 1 || len(got.R.Values) != 2 {
		t.Fatalf("got %d nodes, %d nodes6, %d values; want 1, 1, 2", len(got.R.Nodes), len(got.R.Nodes6), len(got.R.Values))
	}
}

func TestFieldString(t *testing.T) {
	tests := []struct {
		f    krpc.Field
		want string
	}{
		{0, "none"},
		{krpc.HasID, "id"},
		{krpc.HasTarget | krpc.HasToken, "target|token"},
		{krpc.HasNum, "num"},
		{1 << 31, "unknown"},
	}
	for _, tc := range tests {
		if got := tc.f.String(); got != tc.want {
			t.Errorf("Field(%b).String() = %q, want %q", uint32(tc.f), got, tc.want)
		}
	}
}
