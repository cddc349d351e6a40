package replica

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/store"
)

// maxRecordValue is the largest value one record carries
// (kademlia.MaxRecordValue, which this package cannot import).
const maxRecordValue = 8 << 10

// FuzzCASMsg: any bytes either fail to decode or decode to a message
// that encodes back to bytes that decode to the same message.
func FuzzCASMsg(f *testing.F) {
	rec := store.Record{Key: "k", Version: store.Version{Time: 5 << 16, Writer: 2}, Value: []byte("v"), Expires: time.UnixMilli(1e12)}
	f.Add(AppendCASMsg(nil, CASMsg{Phase: PhasePrepare, Key: "k", Ballot: rec.Version}))
	f.Add(AppendCASMsg(nil, CASMsg{Phase: PhaseAccept, Key: "k", Ballot: rec.Version, Rec: &rec}))
	f.Add([]byte("d2:phi2e1:k1:ke"))
	f.Fuzz(func(t *testing.T, x []byte) {
		m, err := ParseCASMsg(x)
		if err != nil {
			return
		}
		again, err := ParseCASMsg(AppendCASMsg(nil, m))
		if err != nil {
			t.Fatalf("re-encoded message does not decode: %v", err)
		}
		if again.Phase != m.Phase || again.Key != m.Key || again.Ballot != m.Ballot || (again.Rec == nil) != (m.Rec == nil) {
			t.Fatalf("round trip changed the message: %+v, then %+v", m, again)
		}
		if m.Phase == PhaseAccept && (m.Rec == nil || !bytes.Equal(m.Rec.Value, again.Rec.Value)) {
			t.Fatalf("accept's record lost in the round trip")
		}
	})
}

// FuzzCASAnswer is FuzzCASMsg for answers.
func FuzzCASAnswer(f *testing.F) {
	rec := store.Record{Key: "k", Version: store.Version{Time: 5 << 16, Writer: 2}, Value: []byte("v")}
	f.Add(AppendCASAnswer(nil, CASAnswer{OK: true, Rec: &rec}))
	f.Add(AppendCASAnswer(nil, CASAnswer{Seen: rec.Version}))
	f.Fuzz(func(t *testing.T, x []byte) {
		a, err := ParseCASAnswer(x, "k")
		if err != nil {
			return
		}
		again, err := ParseCASAnswer(AppendCASAnswer(nil, a), "k")
		if err != nil {
			t.Fatalf("re-encoded answer does not decode: %v", err)
		}
		if again.OK != a.OK || again.Seen != a.Seen || (again.Rec == nil) != (a.Rec == nil) {
			t.Fatalf("round trip changed the answer: %+v, then %+v", a, again)
		}
	})
}

// TestCASMessagesFit: the largest accept and promise (a key of the
// largest size, a value of the largest) fit a payload.
func TestCASMessagesFit(t *testing.T) {
	rec := store.Record{Key: strings.Repeat("k", store.DefaultMaxKeySize), Version: store.Version{Time: 1<<63 - 1, Writer: 1<<63 - 1},
		Value: bytes.Repeat([]byte{0xff}, maxRecordValue), Expires: time.UnixMilli(1 << 50)}
	m := AppendCASMsg(nil, CASMsg{Phase: PhaseAccept, Key: rec.Key, Ballot: rec.Version, Rec: &rec})
	a := AppendCASAnswer(nil, CASAnswer{OK: true, Rec: &rec, Seen: rec.Version})
	for name, x := range map[string][]byte{"accept": m, "promise": a} {
		if len(x) > MaxPayload {
			t.Errorf("the largest %s is %d bytes, over MaxPayload %d", name, len(x), MaxPayload)
		}
	}
}
