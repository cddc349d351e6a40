package krpc

import (
	"net/netip"
	"strconv"

	"github.com/dhtkit/dhtkit/id"
)

// Append appends the canonical bencoding of m to dst (dictionary keys
// sorted, as BEP 5 requires) and returns the extended slice. It allocates
// nothing when dst has room.
//
// It writes "t", "y", and the body that m.Y names: "q" and "a" for a query
// (the name of m.Q, or m.QName when m.Q is MethodUnknown), "r" for a
// response, "e" for an error. In "a" and "r" it writes exactly the fields
// whose Has bit is set. It writes "v" and "nw" when they are not nil, "ip"
// when m.IP is valid, and "ro" when m.RO is set. A.V and R.V are written as
// they are and must already be well-formed bencode. Nodes whose address
// cannot be carried are left out: "nodes" carries only IPv4 contacts.
func (m *Msg) Append(dst []byte) []byte {
	dst = append(dst, 'd')
	if m.Y == Query {
		dst = append(dst, "1:a"...)
		dst = m.A.append(dst)
	}
	if m.Y == Error {
		dst = append(dst, "1:eli"...)
		dst = strconv.AppendInt(dst, int64(m.E.Code), 10)
		dst = append(dst, 'e')
		dst = appendStr(dst, m.E.Msg)
		dst = append(dst, 'e')
	}
	if m.IP.IsValid() {
		dst = append(dst, "2:ip"...)
		dst = appendCompactAddrStr(dst, m.IP)
	}
	if m.Net != nil {
		dst = append(dst, "2:nw"...)
		dst = appendStr(dst, m.Net)
	}
	if m.Y == Query {
		dst = append(dst, "1:q"...)
		if m.Q != MethodUnknown && m.Q < NumMethods {
			dst = appendStr(dst, methodNames[m.Q])
		} else {
			dst = appendStr(dst, m.QName)
		}
	}
	if m.Y == Response {
		dst = append(dst, "1:r"...)
		dst = m.R.append(dst)
	}
	if m.RO {
		dst = append(dst, "2:roi1e"...)
	}
	dst = append(dst, "1:t"...)
	dst = appendStr(dst, m.T)
	if m.V != nil {
		dst = append(dst, "1:v"...)
		dst = appendStr(dst, m.V)
	}
	dst = append(dst, "1:y1:"...)
	return append(dst, byte(m.Y), 'e')
}

// append writes the "a" dictionary, keys in sorted order.
func (a *Args) append(dst []byte) []byte {
	dst = append(dst, 'd')
	if a.Has&HasCAS != 0 {
		dst = appendInt(append(dst, "3:cas"...), a.CAS)
	}
	if a.Has&HasID != 0 {
		dst = appendID(append(dst, "2:id"...), &a.ID)
	}
	if a.Has&HasImpliedPort != 0 {
		v := int64(0)
		if a.ImpliedPort {
			v = 1
		}
		dst = appendInt(append(dst, "12:implied_port"...), v)
	}
	if a.Has&HasInfoHash != 0 {
		dst = appendID(append(dst, "9:info_hash"...), &a.InfoHash)
	}
	if a.Has&HasK != 0 {
		dst = appendStr(append(dst, "1:k"...), a.K)
	}
	if a.Has&HasNoSeed != 0 {
		dst = appendInt(append(dst, "6:noseed"...), boolInt(a.NoSeed))
	}
	if a.Has&HasPort != 0 {
		dst = appendInt(append(dst, "4:port"...), int64(a.Port))
	}
	if a.Has&HasSalt != 0 {
		dst = appendStr(append(dst, "4:salt"...), a.Salt)
	}
	if a.Has&HasScrape != 0 {
		dst = appendInt(append(dst, "6:scrape"...), boolInt(a.Scrape))
	}
	if a.Has&HasSeed != 0 {
		dst = appendInt(append(dst, "4:seed"...), boolInt(a.Seed))
	}
	if a.Has&HasSeq != 0 {
		dst = appendInt(append(dst, "3:seq"...), a.Seq)
	}
	if a.Has&HasSig != 0 {
		dst = appendStr(append(dst, "3:sig"...), a.Sig)
	}
	if a.Has&HasTarget != 0 {
		dst = appendID(append(dst, "6:target"...), &a.Target)
	}
	if a.Has&HasToken != 0 {
		dst = appendStr(append(dst, "5:token"...), a.Token)
	}
	if a.Has&HasV != 0 {
		dst = append(append(dst, "1:v"...), a.V...)
	}
	if a.Has&HasWant != 0 {
		dst = append(dst, "4:wantl"...)
		if a.Want&WantN4 != 0 {
			dst = append(dst, "2:n4"...)
		}
		if a.Want&WantN6 != 0 {
			dst = append(dst, "2:n6"...)
		}
		dst = append(dst, 'e')
	}
	if a.Has&HasX != 0 {
		dst = append(append(dst, "1:x"...), a.X...)
	}
	return append(dst, 'e')
}

// append writes the "r" dictionary, keys in sorted order.
func (r *Return) append(dst []byte) []byte {
	dst = append(dst, 'd')
	if r.Has&HasBFpe != 0 {
		dst = appendStr(append(dst, "4:BFpe"...), r.BFpe)
	}
	if r.Has&HasBFsd != 0 {
		dst = appendStr(append(dst, "4:BFsd"...), r.BFsd)
	}
	if r.Has&HasID != 0 {
		dst = appendID(append(dst, "2:id"...), &r.ID)
	}
	if r.Has&HasInterval != 0 {
		dst = appendInt(append(dst, "8:interval"...), int64(r.Interval))
	}
	if r.Has&HasK != 0 {
		dst = appendStr(append(dst, "1:k"...), r.K)
	}
	if r.Has&HasNodes != 0 {
		dst = appendLen(append(dst, "5:nodes"...), compactNodesLen(r.Nodes))
		dst = AppendCompactNodes(dst, r.Nodes)
	}
	if r.Has&HasNodes6 != 0 {
		dst = appendLen(append(dst, "6:nodes6"...), compactNodes6Len(r.Nodes6))
		dst = AppendCompactNodes6(dst, r.Nodes6)
	}
	if r.Has&HasNum != 0 {
		dst = appendInt(append(dst, "3:num"...), int64(r.Num))
	}
	if r.Has&HasSamples != 0 {
		dst = appendLen(append(dst, "7:samples"...), len(r.Samples)*id.Len)
		for i := range r.Samples {
			dst = append(dst, r.Samples[i][:]...)
		}
	}
	if r.Has&HasSeq != 0 {
		dst = appendInt(append(dst, "3:seq"...), r.Seq)
	}
	if r.Has&HasSig != 0 {
		dst = appendStr(append(dst, "3:sig"...), r.Sig)
	}
	if r.Has&HasToken != 0 {
		dst = appendStr(append(dst, "5:token"...), r.Token)
	}
	if r.Has&HasV != 0 {
		dst = append(append(dst, "1:v"...), r.V...)
	}
	if r.Has&HasValues != 0 {
		dst = append(dst, "6:valuesl"...)
		for _, p := range r.Values {
			if p.IsValid() {
				dst = appendCompactAddrStr(dst, p)
			}
		}
		dst = append(dst, 'e')
	}
	if r.Has&HasX != 0 {
		dst = append(append(dst, "1:x"...), r.X...)
	}
	return append(dst, 'e')
}

// boolInt is a flag's bencoded value: BEP 33's scrape, noseed and seed
// are 1 when set.
func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// appendStr appends a bencoded string.
func appendStr[S ~string | ~[]byte](dst []byte, s S) []byte {
	return append(appendLen(dst, len(s)), s...)
}

// appendLen appends the length prefix of a string of n bytes.
func appendLen(dst []byte, n int) []byte {
	return append(strconv.AppendInt(dst, int64(n), 10), ':')
}

func appendInt(dst []byte, v int64) []byte {
	dst = append(dst, 'i')
	return append(strconv.AppendInt(dst, v, 10), 'e')
}

func appendID(dst []byte, x *id.ID) []byte {
	return append(append(dst, "20:"...), x[:]...)
}

// appendCompactAddrStr appends a valid address as a bencoded compact string.
func appendCompactAddrStr(dst []byte, a netip.AddrPort) []byte {
	if a.Addr().Unmap().Is4() {
		dst = append(dst, "6:"...)
	} else {
		dst = append(dst, "18:"...)
	}
	return AppendCompactAddr(dst, a)
}
