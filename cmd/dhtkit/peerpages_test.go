package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit"
	"github.com/dhtkit/dhtkit/httpapi"
)

// TestPeerPagesLink: three nodes announce their web pages, and each one's
// /v1/members (and so its page) links to the other two (issue 14).
func TestPeerPagesLink(t *testing.T) {
	nodes := testNetwork(t, 3)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	urls := make([]string, len(nodes))
	for i, n := range nodes {
		pages := newPeerPages(n, 0, n.Logger())
		pages.every, pages.retry = 200*time.Millisecond, 200*time.Millisecond
		url, err := serveHTTP(ctx, "127.0.0.1:0", n, httpapi.Options{PeerURL: pages.URL}, n.Logger())
		if err != nil {
			t.Fatal(err)
		}
		urls[i] = url
		pages.port = announcePort(dhtkit.Kademlia, n.Network(), url, "127.0.0.1:0", []string{"127.0.0.1:1"})
		if pages.port == 0 {
			t.Fatalf("%s: no port to announce", url)
		}
		go pages.run(ctx)
	}
	want := map[string]string{} // node id → its page
	for i, n := range nodes {
		want[n.ID().String()] = urls[i]
	}
	// Generous: announces and lookups on a busy machine take a while.
	deadline := time.Now().Add(2 * time.Minute)
	for i := range nodes {
		for {
			got := membersURLs(t, urls[i])
			missing := 0
			for nid, url := range want {
				if nid == nodes[i].ID().String() {
					continue
				}
				if got[nid] != url {
					missing++
				}
			}
			if missing == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d's members link %v; want the pages %v", i, got, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// membersURLs returns the pages /v1/members links, by node id.
func membersURLs(t *testing.T, base string) map[string]string {
	t.Helper()
	resp, err := http.Get(base + "v1/members")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m struct {
		Members []struct{ ID, URL string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, c := range m.Members {
		out[c.ID] = c.URL
	}
	return out
}

// A page is taken only from a peer at the contact's own IP address: no
// node can point another's link elsewhere.
func TestPageAt(t *testing.T) {
	ap := netip.MustParseAddrPort
	for _, tc := range []struct {
		contact string
		peers   []string
		want    string
	}{
		{"127.0.0.1:7001", []string{"127.0.0.1:6880"}, "http://127.0.0.1:6880/"},
		{"10.0.0.5:6881", []string{"10.0.0.9:6880", "10.0.0.5:8080"}, "http://10.0.0.5:8080/"},
		{"10.0.0.5:6881", []string{"10.0.0.9:6880"}, ""},
		{"10.0.0.5:6881", nil, ""},
		{"[::ffff:10.0.0.5]:6881", []string{"10.0.0.5:80"}, "http://10.0.0.5:80/"},
		{"[2001:db8::1]:6881", []string{"[2001:db8::1]:6880"}, "http://[2001:db8::1]:6880/"},
	} {
		var peers []netip.AddrPort
		for _, p := range tc.peers {
			peers = append(peers, ap(p))
		}
		if got := pageAt(ap(tc.contact), peers); got != tc.want {
			t.Errorf("pageAt(%s, %v) = %q, want %q", tc.contact, tc.peers, got, tc.want)
		}
	}
}

// Which nodes announce a page, and on which port.
func TestAnnouncePort(t *testing.T) {
	for _, tc := range []struct {
		name, protocol, network, url, listen string
		bootstrap                            []string
		want                                 int
	}{
		{"a local cluster's member", dhtkit.Kademlia, "dhtkit", "http://127.0.0.1:6881/", ":7002", []string{"127.0.0.1:7001"}, 6881},
		{"a local cluster's first node", dhtkit.Kademlia, "dhtkit", "http://127.0.0.1:6880/", ":7001", nil, 6880},
		{"page on every address", dhtkit.Kademlia, "dhtkit", "http://[::]:6880/", ":6881", []string{"10.0.0.1:6881"}, 6880},
		{"page on a LAN address", dhtkit.Kademlia, "dhtkit", "http://10.0.0.2:6880/", ":6881", []string{"10.0.0.1:6881"}, 6880},
		{"page on loopback, peers remote", dhtkit.Kademlia, "dhtkit", "http://127.0.0.1:6880/", ":6881", []string{"10.0.0.1:6881"}, 0},
		{"first node on a LAN address, page on loopback", dhtkit.Kademlia, "dhtkit", "http://127.0.0.1:6880/", "10.0.0.2:6881", nil, 0},
		{"chord", dhtkit.Chord, "dhtkit", "http://127.0.0.1:6880/", ":7001", nil, 0},
		{"mainline", dhtkit.Kademlia, dhtkit.Mainline, "http://[::]:6880/", ":6881", nil, 0},
	} {
		if got := announcePort(tc.protocol, tc.network, tc.url, tc.listen, tc.bootstrap); got != tc.want {
			t.Errorf("%s: announcePort = %d, want %d", tc.name, got, tc.want)
		}
	}
}
