package fault

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeNode serves the key-value endpoints the Client uses from a map,
// as a node's API answers them: a version per write, 404 when absent.
func fakeNode(t *testing.T) *httptest.Server {
	var (
		mu   sync.Mutex
		vals = map[string][2]string{} // key → value, version
		next = 0
	)
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /v1/keys/{key}", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		next++
		v := fmt.Sprintf("%032x", next)
		vals[r.PathValue("key")] = [2]string{string(b), v}
		mu.Unlock()
		fmt.Fprintf(w, `{"key":%q,"version":%q}`, r.PathValue("key"), v)
	})
	mux.HandleFunc("GET /v1/keys/{key}", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		v, ok := vals[r.PathValue("key")]
		mu.Unlock()
		if r.PathValue("key") == "broken" {
			http.Error(w, `{"error":"too few replicas"}`, http.StatusServiceUnavailable)
			return
		}
		if !ok {
			http.Error(w, `{"error":"not found"}`, http.StatusNotFound)
			return
		}
		w.Header().Set("X-Dhtkit-Version", v[1])
		w.Header().Set("X-Dhtkit-Partial", "true")
		io.WriteString(w, v[0])
	})
	mux.HandleFunc("DELETE /v1/keys/{key}", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		delete(vals, r.PathValue("key"))
		mu.Unlock()
		io.WriteString(w, `{"deleted":true}`)
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func TestClient(t *testing.T) {
	s := fakeNode(t)
	c := NewClient()
	tg := Target{Name: "n0", API: s.URL}
	ctx := context.Background()
	w := c.Do(ctx, 0, tg, Write, "a/b c", "v1", false)
	if !w.OK || w.Version != fmt.Sprintf("%032x", 1) || w.Value != "v1" || w.End.Before(w.Start) {
		t.Fatalf("write: %+v", w)
	}
	r := c.Do(ctx, 1, tg, Read, "a/b c", "", true)
	if !r.OK || !r.Found || r.Value != "v1" || r.Version != w.Version || !r.Partial || !r.Final || r.Node != "n0" {
		t.Fatalf("read: %+v", r)
	}
	if d := c.Do(ctx, 0, tg, Delete, "a/b c", "", false); !d.OK {
		t.Fatalf("delete: %+v", d)
	}
	if r := c.Do(ctx, 0, tg, Read, "a/b c", "", false); !r.OK || r.Found {
		t.Fatalf("read after delete: %+v, want answered, not found", r)
	}
	if r := c.Do(ctx, 0, tg, Read, "broken", "", false); r.OK || !strings.Contains(r.Err, "503") {
		t.Fatalf("read of a failing node: %+v, want not OK with the status", r)
	}
	down := Target{Name: "down", API: "http://127.0.0.1:1"}
	if op := c.Do(ctx, 0, down, Write, "k", "x", false); op.OK || op.Err == "" {
		t.Fatalf("write to nobody: %+v", op)
	}
	if got := len(c.History.Ops()); got != 6 {
		t.Fatalf("history holds %d operations, want 6", got)
	}
	if r := Check(c.History.Ops()); !r.Clean() || r.Acknowledged != 2 {
		t.Fatalf("a correct node's history: %s%s", r.Summary(), r.Examples(5))
	}
}

// TestRun runs both workloads against the fake node for a moment: every
// value unique, each process one operation at a time, a clean history.
func TestRun(t *testing.T) {
	s := fakeNode(t)
	c := NewClient()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	tg := func(int) Target { return Target{Name: "n0", API: s.URL} }
	var wg sync.WaitGroup
	wg.Go(func() { c.Run(ctx, Register{Keys: []string{"r1", "r2"}, Reads: 0.5, Deletes: 0.1}, 3, 1, 0, tg) })
	wg.Go(func() { c.Run(ctx, Set{Prefix: "s/"}, 2, 2, time.Millisecond, tg) })
	wg.Wait()
	ops := c.History.Ops()
	values := map[string]bool{}
	last := map[[2]int]time.Time{}
	kinds := map[Kind]int{}
	for _, op := range ops {
		kinds[op.Kind]++
		if op.Kind == Write {
			if values[op.Value] {
				t.Fatalf("value %q written twice", op.Value)
			}
			values[op.Value] = true
		}
		set := 0
		if strings.HasPrefix(op.Key, "s/") {
			set = 1
		}
		p := [2]int{set, op.Process}
		if op.Start.Before(last[p]) {
			t.Fatalf("process %v began an operation before its previous one ended", p)
		}
		last[p] = op.End
	}
	if kinds[Read] == 0 || kinds[Write] == 0 || kinds[Delete] == 0 {
		t.Fatalf("operations of each kind: %v", kinds)
	}
	if r := Check(ops); !r.Clean() {
		t.Fatalf("%s%s", r.Summary(), r.Examples(5))
	}
}
