package krpc

import (
	"math/bits"
	"strings"
)

// fieldNames are the wire names of the Field bits, in bit order.
var fieldNames = [...]string{
	"id", "target", "info_hash", "port", "implied_port", "token", "want",
	"v", "k", "sig", "salt", "seq", "cas", "nodes", "nodes6", "values",
	"samples", "interval", "num", "x", "scrape", "noseed", "seed", "BFsd",
	"BFpe",
}

// String returns the wire names of the fields in f, joined by "|", so that
// a node can say which arguments a query lacks: "target|token".
func (f Field) String() string {
	if f == 0 {
		return "none"
	}
	var sb strings.Builder
	for f != 0 {
		i := bits.TrailingZeros32(uint32(f))
		f &^= 1 << i
		if sb.Len() > 0 {
			sb.WriteByte('|')
		}
		if i < len(fieldNames) {
			sb.WriteString(fieldNames[i])
		} else {
			sb.WriteString("unknown")
		}
	}
	return sb.String()
}
