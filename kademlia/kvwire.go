package kademlia

import (
	"errors"
	"fmt"

	"github.com/dhtkit/dhtkit/replica"
	"github.com/dhtkit/dhtkit/store"
)

// The payloads of dhtkit's key-value methods travel bencoded under the key
// "x" of "a" and "r", so that the standard KRPC codec carries them and a
// standard peer, which answers the unknown methods with 204, is not
// disturbed by them.
//
//	dk_store  a.x: {"recs": [rec, ...]}        r.x: {"ok": [0|1, ...]}
//	          ("o": 1 when the sender wrote the one record itself)
//	dk_fetch  a.x: {"k": key} or {"h": target} r.x: {"recs": [rec, ...]}
//	dk_sync   the replication layer's tree exchange (package replica)
//	dk_keys   a.x: {"d": depth, "b": [[i, digest], ...]}
//	          r.x: {"m": [[i, [[key, time, writer, deleted], ...]], ...],
//	                "t": 1 when buckets asked for did not fit}
//	dk_listen a.x: {"k": key}                   r.x: {"recs": [rec] or []}
//	dk_notify a.x: {"recs": [rec]}              (empty response; error 253
//	                                             if the receiver stopped listening)
//
// rec is the replication layer's record (replica.AppendRecords): {"k":
// key, "v": value, "t": version time, "w": writer, "e": expiry in unix ms
// (absent: never), "d": 1 for a tombstone}.

var errBadPayload = errors.New("malformed dhtkit payload")

// The codecs are the replication layer's, shared with Chord.
func encodeRecords(dst []byte, key string, recs []store.Record) []byte {
	return replica.AppendRecordsAs(dst, key, recs)
}

// encodeOwnWrite is a dk_store payload of one record the sender wrote with
// its own clock: replica.AppendOwnWrite.
func encodeOwnWrite(dst []byte, r store.Record) []byte { return replica.AppendOwnWrite(dst, r) }

// decodeX decodes the "x" payload of a message into a dictionary.
func decodeX(x []byte) (map[string]any, error) {
	d, err := replica.DecodeX(x)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errBadPayload, err)
	}
	return d, nil
}

// AppendRecords appends the payload of a dk_store query or a dk_fetch
// answer, {"recs": [rec, ...]}: replica.AppendRecords.
func AppendRecords(dst []byte, recs []store.Record) []byte { return replica.AppendRecords(dst, recs) }

// ParseRecords decodes what AppendRecords encodes: replica.ParseRecords.
func ParseRecords(x []byte) ([]store.Record, error) { return replica.ParseRecords(x) }

func encodeX(dst []byte, v map[string]any) []byte { return replica.EncodeX(dst, v) }
