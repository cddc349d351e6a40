package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestValueCommands drives put, get, del and listen with --id: many values
// under one key, signed and encrypted ones opened, and the numeric flags
// checked.
func TestValueCommands(t *testing.T) {
	nodes := testNetwork(t, 5)
	run, api := cliThrough(t, nodes[1])
	alice := filepath.Join(t.TempDir(), "alice")
	code, keys, _ := dhtkitCmd(t, "key", "--key", alice)
	if code != 0 {
		t.Fatalf("key: exit %d", code)
	}
	signPub, encPub := strings.Fields(keys)[1], strings.Fields(keys)[3]

	// A listener from the start: it must hear every value, opened.
	lctx, stopListen := context.WithCancel(context.Background())
	defer stopListen()
	var heard syncBuffer
	listened := make(chan int, 1)
	go func() { listened <- run0(lctx, &heard, "listen", "sensors", "--json", "--key", alice, api) }()

	for _, p := range [][]string{
		{"put", "sensors", "default"},
		{"put", "sensors", "one", "--id", "1"},
		{"put", "sensors", "signed two", "--id", "2", "--sign", "--key", alice},
		{"put", "sensors", "secret three", "--id", "3", "--encrypt-to", encPub},
	} {
		if code, _, errs := run(p...); code != 0 {
			t.Fatalf("%v: exit %d, %s", p, code, errs)
		}
	}
	code, out, errs := run("get", "sensors", "--key", alice)
	if code != 0 {
		t.Fatalf("get: exit %d, %s", code, errs)
	}
	if want := "secret three\nsigned two\none\ndefault\n"; out != want {
		t.Fatalf("get: %q, want %q (newest first, each opened)", out, want)
	}
	if !strings.Contains(errs, "value 0000000000000002 signed by "+signPub) {
		t.Errorf("get does not name the signer: %q", errs)
	}
	code, out, _ = run("get", "sensors", "--json", "--key", alice)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 4 {
		t.Fatalf("get --json: exit %d, %d lines", code, len(lines))
	}
	var two getJSON
	if err := json.Unmarshal([]byte(lines[1]), &two); err != nil || two.ID != "0000000000000002" || two.Signer != signPub || string(two.Value) != "signed two" {
		t.Fatalf("get --json, value 2: %s (%v)", lines[1], err)
	}
	if code, out, _ := run("get", "sensors", "--id", "1"); code != 0 || out != "one" {
		t.Fatalf("get --id 1: exit %d, %q", code, out)
	}
	if code, out, _ := run("get", "sensors", "--signer", signPub); code != 0 || out != "signed two\n" {
		t.Fatalf("get --signer of several values: exit %d, %q", code, out)
	}
	if code, _, errs := run("get", "sensors", "--out", filepath.Join(t.TempDir(), "x")); code != exitUsage || !strings.Contains(errs, "--id") {
		t.Fatalf("get --out of several values: exit %d, %q", code, errs)
	}
	if code, _, _ := run("del", "sensors", "--id", "1"); code != 0 {
		t.Fatalf("del --id 1: exit %d", code)
	}
	if code, _, _ := run("get", "sensors", "--id", "1"); code != exitNotFound {
		t.Fatalf("get --id 1 after its delete: exit %d", code)
	}
	// del without --id: all it may; alice's value stays until she signs.
	if code, _, errs := run("del", "sensors"); code != 1 || !strings.Contains(errs, "0000000000000002") {
		t.Fatalf("del of a key with a signed value: exit %d, %q", code, errs)
	}
	if code, _, errs := run("del", "sensors", "--sign", "--key", alice); code != 0 {
		t.Fatalf("del --sign: exit %d, %q", code, errs)
	}
	if code, _, _ := run("get", "sensors"); code != exitNotFound {
		t.Fatalf("get after deleting every value: exit %d", code)
	}

	// The listener heard each value added, and each deleted, by id.
	want := map[string]bool{
		"added 0000000000000000": false, "added 0000000000000001": false, "added 0000000000000002": false,
		"added 0000000000000003": false, "deleted 0000000000000001": false, "deleted 0000000000000002": false,
	}
	deadline := time.Now().Add(time.Minute)
	for {
		missing := 0
		for _, line := range strings.Split(heard.String(), "\n") {
			var ev struct {
				ID, Reason, Signer, Text string
			}
			if json.Unmarshal([]byte(line), &ev) != nil {
				continue
			}
			want[ev.Reason+" "+ev.ID] = true
			if ev.Reason == "added" && ev.ID == "0000000000000002" && (ev.Signer != signPub || ev.Text != "signed two") {
				t.Fatalf("listen: the signed value as %s", line)
			}
			if ev.Reason == "added" && ev.ID == "0000000000000003" && ev.Text != "secret three" {
				t.Fatalf("listen: the encrypted value as %s", line)
			}
		}
		for _, ok := range want {
			if !ok {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("listen heard %v\n%s", want, heard.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopListen()
	<-listened
}

// run0 runs a command line in-process under ctx, its stdout into out.
func run0(ctx context.Context, out *syncBuffer, args ...string) int {
	var errb bytes.Buffer
	return run(ctx, args, out, &errb)
}

// TestValueFlagsChecked: --id and --ttl are checked before anything is
// sent, each with a one-line usage error.
func TestValueFlagsChecked(t *testing.T) {
	for _, args := range [][]string{
		{"put", "k", "v", "--id", "zz"},
		{"put", "k", "v", "--id", "12345678901234567"},
		{"put", "k", "v", "--ttl", "0"},
		{"put", "k", "v", "--ttl", "-1s"},
		{"get", "k", "--id", "random"},
		{"del", "k", "--id", "-1"},
		{"listen", "k", "--id", "0xg"},
	} {
		code, _, errs := dhtkitCmd(t, append(args, "--api=127.0.0.1:1")...)
		if code != exitUsage || strings.Count(strings.TrimSpace(errs), "\n") != 0 {
			t.Errorf("%v: exit %d, %q; want a one-line usage error", args, code, errs)
		}
	}
}
