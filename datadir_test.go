package dhtkit

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/store"
)

// TestDamagedValuesFile: a node whose values.db is damaged does not start
// in silence; it names the file and the flag, and with MoveDamaged it sets
// the file aside and starts empty.
func TestDamagedValuesFile(t *testing.T) {
	for _, tt := range []struct {
		name   string
		damage func(b []byte) []byte
	}{
		{"zero bytes", func([]byte) []byte { return nil }},
		{"truncated", func(b []byte) []byte { return b[:len(b)/2] }},
		{"garbage pages", func(b []byte) []byte {
			for i := 8192; i < len(b); i++ {
				b[i] = byte(i * 31)
			}
			return b
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig()
			cfg.DataDir = dir
			n, err := Listen(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			for _, k := range []string{"a", "b", "c"} {
				if _, err := n.Put(ctx, k, []byte("value of "+k), PutOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			if err := n.Close(); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, valuesFile)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, tt.damage(b), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err = Listen(context.Background(), cfg)
			if !errors.Is(err, store.ErrDamaged) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "--move-damaged") {
				t.Fatalf("start on a damaged values.db: %v", err)
			}
			t.Logf("error: %v", err)
			cfg.MoveDamaged = true
			n = newNode(t, cfg)
			moved, _ := filepath.Glob(path + ".damaged-*")
			if len(moved) != 1 {
				t.Fatalf("damaged files set aside: %v", moved)
			}
			if got := n.Local(); len(got) != 0 {
				t.Errorf("new store holds %d records", len(got))
			}
			if _, err := n.Put(ctx, "d", []byte("new"), PutOptions{}); err != nil {
				t.Fatal(err)
			}
		})
	}
}
