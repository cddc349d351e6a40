package httpapi

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/chord"
	"github.com/dhtkit/dhtkit/id"
)

// TestChordRingAPI: /v1/ring, /v1/routing and the page of a Chord node
// speak of predecessor, successors and fingers, and a lookup the node
// answers itself names it by a valid address.
func TestChordRingAPI(t *testing.T) {
	nodes, servers := newChordNet(t, 5)
	var (
		want chord.Ring
		rg   ringJSON
		resp *http.Response
		body []byte
	)
	// newChordNet waits for the successor lists; the first fingers are
	// fixed a few rounds later.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		want, _ = nodes[0].Ring()
		resp, body = call(t, "GET", servers[0].URL+"/v1/ring", nil)
		if resp.StatusCode != 200 {
			t.Fatalf("ring: %d %s", resp.StatusCode, body)
		}
		rg = decode[ringJSON](t, body)
		ok := rg.ID == nodes[0].ID().String() && rg.Predecessor != nil && len(rg.Successors) == 3 && len(rg.Fingers) > 0
		if ok && rg.Successors[0].ID == want.Successors[0].ID.String() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ring = %s", body)
		}
	}
	for _, f := range rg.Fingers {
		if f.Start != id.AddPow2(nodes[0].ID(), f.Index).String() || f.Node.ID == "" || strings.Contains(f.Node.Addr, "invalid") {
			t.Errorf("finger row %+v", f)
		}
	}

	resp, body = call(t, "GET", servers[0].URL+"/v1/routing", nil)
	rt := decode[routingJSON](t, body)
	if resp.StatusCode != 200 || rt.Protocol != "chord" || rt.Ring == nil || len(rt.Buckets) != 0 || rt.Nodes < 4 {
		t.Errorf("routing of a Chord node: %d %s", resp.StatusCode, body)
	}

	resp, body = call(t, "GET", servers[0].URL+"/", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("page: %d", resp.StatusCode)
	}
	page := string(body)
	for _, w := range []string{"successor list", "predecessor", "fingers", `id="chord-ring"`, "finger[i] = successor(n + 2<sup>i</sup>)"} {
		if !strings.Contains(page, w) {
			t.Errorf("the Chord page lacks %q", w)
		}
	}
	// The drawing has a chord for every finger row of /v1/ring and a point
	// for every successor (read again if the ring changed in between).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, body = call(t, "GET", servers[0].URL+"/v1/ring", nil)
		now := decode[ringJSON](t, body)
		fingers, succs := strings.Count(page, `<path class="finger"`), strings.Count(page, `<circle class="successor"`)
		if fingers == len(now.Fingers) && succs == len(now.Successors) {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("the ring draws %d finger chords and %d successors, /v1/ring has %d and %d", fingers, succs, len(now.Fingers), len(now.Successors))
			break
		}
		_, body = call(t, "GET", servers[0].URL+"/", nil)
		page = string(body)
	}
	for _, w := range []string{"XOR distance", "prefix 0 bits", "buckets"} {
		if strings.Contains(page, w) {
			t.Errorf("the Chord page says %q", w)
		}
	}

	// The lookup page shows the hops of a lookup that takes some: of the
	// node's predecessor, beyond its successor list.
	far := want.Predecessor.ID.String()
	resp, body = call(t, "GET", servers[0].URL+"/ui/lookup?target="+far, nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "hop by hop") || !strings.Contains(string(body), "the successor <code title=\""+far) {
		t.Errorf("lookup page: %d\n%s", resp.StatusCode, body)
	}

	// A lookup of the node's own id ends at the node itself.
	resp, body = call(t, "GET", servers[0].URL+"/v1/lookup/"+nodes[0].ID().String(), nil)
	lk := decode[lookupJSON](t, body)
	if resp.StatusCode != 200 || len(lk.Nodes) == 0 || lk.Nodes[0].ID != nodes[0].ID().String() || strings.Contains(string(body), "invalid") {
		t.Errorf("lookup of self: %d %s", resp.StatusCode, body)
	}
}

func TestRingOfKademliaNode(t *testing.T) {
	tn := newTestNet(t, 1)
	resp, body := call(t, "GET", tn.servers[0].URL+"/v1/ring", nil)
	wantError(t, resp, body, http.StatusNotFound, "Kademlia")
	resp, body = call(t, "GET", tn.servers[0].URL+"/", nil)
	if !strings.Contains(string(body), "XOR distance") {
		t.Errorf("the Kademlia page lost its legend: %d", resp.StatusCode)
	}
}
