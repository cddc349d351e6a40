package kademlia

import (
	"strings"
	"testing"

	"github.com/dhtkit/dhtkit/krpc"
)

func keysAnswer(t testing.TB, m []any) []byte {
	t.Helper()
	b, err := krpc.AppendValue(nil, map[string]any{"m": m})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDecodeKeys: a KVKeys answer is taken as far as it is well formed
// and in the buckets asked; a truncated answer names the next bucket.
func TestDecodeKeys(t *testing.T) {
	entry := func(k string) []any { return []any{k, int64(5), int64(7), int64(0)} }
	long := strings.Repeat("k", 1000)
	var big []any // buckets 10.. with 1 KiB keys: over maxPayload by bucket 21
	for b := 10; b < 40; b++ {
		big = append(big, []any{int64(b), []any{entry(long + string(rune('a'+b%26)))}})
	}
	tests := []struct {
		name    string
		m       []any
		entries int
		next    int
		bad     bool
	}{
		{"empty", []any{}, 0, 100, false},
		{"two buckets", []any{[]any{int64(3), []any{entry("a"), entry("b")}}, []any{int64(9), []any{entry("c")}}}, 3, 100, false},
		{"truncated by size (earlier versions)", big[:12], 12, 22, false},
		{"bucket before first", []any{[]any{int64(-1), []any{}}}, 0, 0, true},
		{"bucket past last", []any{[]any{int64(100), []any{}}}, 0, 0, true},
		{"out of order", []any{[]any{int64(5), []any{}}, []any{int64(4), []any{}}}, 0, 0, true},
		{"repeated bucket", []any{[]any{int64(5), []any{}}, []any{int64(5), []any{}}}, 0, 0, true},
		{"empty key", []any{[]any{int64(5), []any{entry("")}}}, 0, 0, true},
		{"short entry", []any{[]any{int64(5), []any{[]any{"k", int64(1)}}}}, 0, 0, true},
		{"not a list", []any{int64(5)}, 0, 0, true},
	}
	// A node that says it stopped short ("t": 1).
	b, _ := krpc.AppendValue(nil, map[string]any{"m": []any{[]any{int64(7), []any{entry("a")}}}, "t": int64(1)})
	if es, next, err := decodeKeys(b, 0, 100); err != nil || len(es) != 1 || next != 8 {
		t.Errorf("answer marked truncated after bucket 7: %d entries, next %d, %v; want 1, 8", len(es), next, err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es, next, err := decodeKeys(keysAnswer(t, tt.m), 0, 100)
			if tt.bad {
				if err == nil {
					t.Fatalf("accepted: %d entries, next %d", len(es), next)
				}
				return
			}
			if err != nil || len(es) != tt.entries || next != tt.next {
				t.Fatalf("%d entries, next %d, %v; want %d, %d", len(es), next, err, tt.entries, tt.next)
			}
		})
	}
}

// FuzzDecodeKeys: any answer decodes without panic into entries with
// keys, and a next bucket that moves the walk forward within its range.
func FuzzDecodeKeys(f *testing.F) {
	f.Add([]byte("d1:mlli3eli1:kei5ei7ei0eeeeee"), 0, 100)
	f.Add([]byte("d1:mlee"), 5, 6)
	f.Add([]byte("de"), 0, 1024)
	f.Fuzz(func(t *testing.T, x []byte, first, last int) {
		if first < 0 || last <= first || last > KeyBuckets {
			return
		}
		es, next, err := decodeKeys(x, first, last)
		if err != nil {
			return
		}
		if next <= first || next > last {
			t.Fatalf("next %d outside (%d, %d]", next, first, last)
		}
		for _, e := range es {
			if e.Key == "" || len(e.Key) > maxKeyLen {
				t.Fatalf("entry with key of %d bytes", len(e.Key))
			}
		}
	})
}
