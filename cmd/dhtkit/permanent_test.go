package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestPermanentCommands: put --permanent through a node's HTTP API, the
// node's list (GET /v1/permanent), dhtkit cancel, and put's flags
// refused with a usage error.
func TestPermanentCommands(t *testing.T) {
	nodes := testNetwork(t, 4)
	run, api := cliThrough(t, nodes[1])
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"put", "k", "v", "--ttl", "0"}, "--ttl 0s: want a positive duration"},
		{[]string{"put", "k", "v", "--ttl", "-1s"}, "--ttl -1s: want a positive duration"},
		{[]string{"put", "k", "v", "--ttl", "soon"}, "invalid argument \"soon\" for \"--ttl\""},
		{[]string{"put", "k", "v", "--permanent", "--sign"}, "--permanent and --sign"},
		{[]string{"put", "k", "v", "--permanent=maybe"}, "--permanent"},
		{[]string{"put", "k", "v", "--if-version", "xyz"}, "--if-version \"xyz\": want a version"},
		{[]string{"put", "k", "v", "--if-absent", "--if-version", "0186a0b1c2d300000000000000000001"}, "give one"},
		{[]string{"put", "k", "v", "--if-absent", "--permanent"}, "decided once"},
		{[]string{"put", "k", "v", "--if-absent", "--sign"}, "--sign"},
	} {
		if code, _, errs := run(tc.args...); code != exitUsage || !strings.Contains(errs, tc.msg) {
			t.Errorf("%v: exit %d, stderr %q, want %d and %q", tc.args, code, errs, exitUsage, tc.msg)
		}
	}
	if code, out, errs := run("put", "lamp", "on", "--permanent", "--ttl", "30s", "--json"); code != 0 || !strings.Contains(out, `"version"`) {
		t.Fatalf("put --permanent: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	var list []struct {
		Key string `json:"key"`
		TTL string `json:"ttl"`
	}
	r, err := http.Get(strings.TrimPrefix(api, "--api=") + "/v1/permanent")
	if err != nil {
		t.Fatal(err)
	}
	resp, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if err := json.Unmarshal(resp, &list); err != nil || len(list) != 1 || list[0].Key != "lamp" || list[0].TTL != (30*time.Second).String() {
		t.Fatalf("GET /v1/permanent: %s (%v)", resp, err)
	}
	if code, out, errs := run("get", "lamp"); code != 0 || strings.TrimSpace(out) != "on" {
		t.Fatalf("get: exit %d, %q, %q", code, out, errs)
	}
	if code, out, errs := run("cancel", "lamp"); code != 0 || !strings.Contains(out, "cancelled lamp") {
		t.Fatalf("cancel: exit %d, %q, %q", code, out, errs)
	}
	if code, _, errs := run("cancel", "lamp"); code != exitNotFound || !strings.Contains(errs, "not a permanent put") {
		t.Fatalf("a second cancel: exit %d, %q", code, errs)
	}
	if len(nodes[1].Permanent()) != 0 {
		t.Fatal("the node still keeps the cancelled put")
	}
	// Conditional writes: exit 1 naming the current version.
	code, out, errs := run("put", "cas", "one", "--if-absent")
	if code != 0 {
		t.Fatalf("put --if-absent: exit %d, %q", code, errs)
	}
	v1 := strings.TrimSpace(out)
	if code, _, errs := run("put", "cas", "two", "--if-absent"); code != 1 || !strings.Contains(errs, v1) || !strings.Contains(errs, "condition failed") {
		t.Fatalf("put --if-absent on a present key: exit %d, %q", code, errs)
	}
	if code, _, errs := run("put", "cas", "two", "--if-version", v1); code != 0 {
		t.Fatalf("put --if-version CURRENT: exit %d, %q", code, errs)
	}
	if code, _, errs := run("put", "cas", "three", "--if-version", v1); code != 1 || !strings.Contains(errs, "the current version is") {
		t.Fatalf("put --if-version OLD: exit %d, %q", code, errs)
	}
	if code, out, _ := run("get", "cas"); code != 0 || strings.TrimSpace(out) != "two" {
		t.Fatalf("get after the swaps: %q", out)
	}
}
