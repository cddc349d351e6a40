package krpc

import "testing"

func TestLoadPayload(t *testing.T) {
	for _, tc := range []struct {
		x    string
		want Load
		ok   bool
	}{
		{"d1:bi100e1:ki3ee", Load{Keys: 3, Bytes: 100}, true},
		{"d1:bi0e1:ki0ee", Load{}, true},
		{"d1:bi-1e1:ki3ee", Load{}, false},
		{"d1:ki3ee", Load{}, false},
		{"d1:b3:abc1:ki3ee", Load{}, false},
		{"li1ei2ee", Load{}, false},
		{"", Load{}, false},
	} {
		got, err := ParseLoad([]byte(tc.x))
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseLoad(%q) = %+v, %v", tc.x, got, err)
		}
	}
	l := Load{Keys: 12345, Bytes: 1 << 40}
	if got, err := ParseLoad(AppendLoad(nil, l)); err != nil || got != l {
		t.Errorf("round trip: %+v %v", got, err)
	}
}

func FuzzParseLoad(f *testing.F) {
	f.Add([]byte("d1:bi100e1:ki3ee"))
	f.Fuzz(func(t *testing.T, x []byte) {
		l, err := ParseLoad(x)
		if err == nil && (l.Keys < 0 || l.Bytes < 0) {
			t.Fatalf("accepted %+v", l)
		}
	})
}
