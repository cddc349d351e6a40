package httpapi

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dhtkit/dhtkit"
	"github.com/dhtkit/dhtkit/routing"
)

// TestRoutingSize: /v1/status counts contacts by state; "nodes" is the
// contacts the node routes through, bad ones left out.
func TestRoutingSize(t *testing.T) {
	c := func(s routing.State) routing.Contact { return routing.Contact{State: s} }
	g, q, b := routing.Good, routing.Questionable, routing.Bad
	tests := []struct {
		name    string
		buckets [][]routing.Contact
		want    routingSize
	}{
		{"empty", nil, routingSize{}},
		{"one empty bucket", [][]routing.Contact{{}}, routingSize{Buckets: 1}},
		{"all good", [][]routing.Contact{{c(g), c(g)}, {c(g)}}, routingSize{Nodes: 3, Good: 3, Buckets: 2}},
		{"partitioned: every contact bad", [][]routing.Contact{{c(b), c(b)}, {c(b)}}, routingSize{Bad: 3, Buckets: 2}},
		{"mixed", [][]routing.Contact{{c(g), c(q), c(b)}, {c(q), c(b)}}, routingSize{Nodes: 3, Good: 1, Questionable: 2, Bad: 2, Buckets: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var bs []routing.Bucket
			for _, cs := range tt.buckets {
				bs = append(bs, routing.Bucket{Contacts: cs})
			}
			if got := routingSizeOf(bs); got != tt.want {
				t.Errorf("routingSizeOf = %+v, want %+v", got, tt.want)
			}
		})
	}
	// The JSON names are the contract's.
	raw, _ := json.Marshal(routingSize{})
	var m map[string]int
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"nodes", "good", "questionable", "bad", "buckets"} {
		if _, ok := m[f]; !ok {
			t.Errorf("routing lacks %q: %s", f, raw)
		}
	}
}

// TestStatusNotReady: a lone node that was not told to be alone says in
// /v1/status that it serves no reads or writes, and what to do.
func TestStatusNotReady(t *testing.T) {
	n, err := dhtkit.Listen(context.Background(), dhtkit.Config{Listen: "127.0.0.1:0", Network: "dhtkit-test", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(n, Options{Logger: quiet}))
	t.Cleanup(func() {
		srv.Close()
		n.Close()
	})
	_, body := call(t, "GET", srv.URL+"/v1/status", nil)
	st := decode[statusJSON](t, body)
	if st.Ready || !strings.Contains(st.NotReady, "--bootstrap none") {
		t.Errorf("a lone node: ready %v, not_ready %q; want false and a hint at --bootstrap none", st.Ready, st.NotReady)
	}
}
