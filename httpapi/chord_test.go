package httpapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit"
	"github.com/dhtkit/dhtkit/chord"
	"github.com/dhtkit/dhtkit/id"
)

// newChordNet starts count Chord nodes joining through the first, serves
// each over httptest, and waits until every node knows its predecessor
// and a full successor list.
func newChordNet(t *testing.T, count int) ([]*dhtkit.Node, []*httptest.Server) {
	t.Helper()
	const succs = 3 // shorter than the ring, so that every lookup finds the whole replica set
	var (
		nodes   []*dhtkit.Node
		servers []*httptest.Server
	)
	for i := range count {
		cfg := dhtkit.Config{
			Protocol: dhtkit.Chord,
			Listen:   "127.0.0.1:0",
			Network:  "dhtkit-test",
			Logger:   quiet,
			Chord: chord.Config{
				Successors:               succs,
				K:                        succs,
				StabilizeInterval:        20 * time.Millisecond,
				FixFingersInterval:       20 * time.Millisecond,
				CheckPredecessorInterval: 50 * time.Millisecond,
			},
		}
		if i > 0 {
			cfg.Bootstrap = []string{nodes[0].Addr().String()}
		}
		n, err := dhtkit.Listen(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(New(n, Options{Logger: quiet, Protocol: dhtkit.Chord, Timeout: 10 * time.Second}))
		t.Cleanup(func() {
			srv.CloseClientConnections()
			srv.Close()
			n.Close()
		})
		nodes = append(nodes, n)
		servers = append(servers, srv)
	}
	want := min(count-1, succs+1) // the predecessor and the successors, each once
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		done := true
		for _, n := range nodes {
			if b := n.Routing(); len(b) != 1 || len(b[0].Contacts) < want {
				done = false
			}
		}
		if done {
			return nodes, servers
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Chord ring of %d nodes did not converge", count)
		}
	}
}

func TestChordNode(t *testing.T) {
	nodes, servers := newChordNet(t, 5)

	resp, body := call(t, "GET", servers[0].URL+"/v1/status", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	st := decode[statusJSON](t, body)
	if st.Protocol != "chord" || st.Network != "dhtkit-test" || st.ID != nodes[0].ID().String() || st.Routing.Nodes < 4 || st.Routing.Buckets != 1 {
		t.Errorf("status = %+v", st)
	}

	resp, body = call(t, "GET", servers[0].URL+"/", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("page: %d %s", resp.StatusCode, body)
	}
	for _, want := range []string{nodes[0].ID().String(), nodes[1].ID().String(), "chord"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if resp, body := call(t, "GET", servers[0].URL+"/v1/routing", nil); resp.StatusCode != 200 {
		t.Errorf("routing: %d %s", resp.StatusCode, body)
	}
	if resp, body := call(t, "GET", servers[0].URL+"/metrics", nil); resp.StatusCode != 200 {
		t.Errorf("metrics: %d %s", resp.StatusCode, body)
	}

	u := "/v1/keys/greeting"
	if resp, body := call(t, "PUT", servers[1].URL+u, strings.NewReader("hello, ring")); resp.StatusCode != 200 {
		t.Fatalf("PUT: %d %s", resp.StatusCode, body)
	}
	if resp, body := call(t, "GET", servers[3].URL+u, nil); resp.StatusCode != 200 || string(body) != "hello, ring" {
		t.Fatalf("GET: %d %q", resp.StatusCode, body)
	}
	if resp, body := call(t, "GET", servers[4].URL+u+"/where", nil); resp.StatusCode != 200 {
		t.Errorf("where: %d %s", resp.StatusCode, body)
	}
	// A read before the delete orders the tombstone after the value on
	// the deleter's clock.
	if resp, body := call(t, "GET", servers[2].URL+u, nil); resp.StatusCode != 200 {
		t.Fatalf("GET: %d %q", resp.StatusCode, body)
	}
	if resp, body := call(t, "DELETE", servers[2].URL+u, nil); resp.StatusCode/100 != 2 {
		t.Fatalf("DELETE: %d %s", resp.StatusCode, body)
	}
	resp, body = call(t, "GET", servers[0].URL+u, nil)
	wantError(t, resp, body, http.StatusNotFound, "not found")

	resp, body = call(t, "GET", servers[0].URL+"/v1/peers/"+id.FromString("x").String(), nil)
	wantError(t, resp, body, http.StatusNotImplemented, "not supported")
}
