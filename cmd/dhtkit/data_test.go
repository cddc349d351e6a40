package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDataCommands drives put, get, whereis, del and status through a
// node's HTTP API, and signed and encrypted values end to end.
func TestDataCommands(t *testing.T) {
	nodes := testNetwork(t, 6)
	run, _ := cliThrough(t, nodes[2])
	if code, out, errs := run("put", "greeting", "hello"); code != 0 || len(strings.TrimSpace(out)) != 32 {
		t.Fatalf("put: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if code, out, _ := run("get", "greeting"); code != 0 || out != "hello" {
		t.Fatalf("get: exit %d, %q", code, out)
	}
	if code, out, _ := run("whereis", "greeting"); code != 0 || strings.Count(out, "\n") != 3 {
		t.Fatalf("whereis: exit %d\n%s", code, out)
	}
	if code, out, _ := run("status"); code != 0 || !strings.Contains(out, nodes[2].ID().String()) {
		t.Fatalf("status: exit %d\n%s", code, out)
	}
	if code, _, _ := run("del", "greeting"); code != 0 {
		t.Fatalf("del: exit %d", code)
	}
	if code, _, errs := run("get", "greeting"); code != exitNotFound || !strings.Contains(errs, "has no value") {
		t.Fatalf("get after del: exit %d, %q", code, errs)
	}

	// Alice signs; Bob encrypts to Alice; Mallory cannot read it.
	dir := t.TempDir()
	alice, mallory := filepath.Join(dir, "alice"), filepath.Join(dir, "mallory")
	code, keys, _ := dhtkitCmd(t, "key", "--key", alice)
	if code != 0 || !strings.HasPrefix(keys, "sign ") {
		t.Fatalf("key: exit %d, %q", code, keys)
	}
	signPub := strings.Fields(keys)[1]
	encPub := strings.Fields(keys)[3]
	if code, _, errs := run("put", "notice", "signed words", "--sign", "--key", alice); code != 0 {
		t.Fatalf("put --sign: %s", errs)
	}
	if code, out, errs := run("get", "notice"); code != 0 || out != "signed words" || !strings.Contains(errs, "signed by "+signPub) {
		t.Fatalf("get of a signed value: exit %d, %q, stderr %q", code, out, errs)
	}
	if code, _, errs := run("put", "secret", "for alice only", "--encrypt-to", encPub, "--sign", "--key", alice); code != 0 {
		t.Fatalf("put --encrypt-to: %s", errs)
	}
	if code, out, _ := run("get", "secret", "--key", alice); code != 0 || out != "for alice only" {
		t.Fatalf("alice reads her secret: exit %d, %q", code, out)
	}
	dhtkitCmd(t, "key", "--key", mallory)
	if code, out, errs := run("get", "secret", "--key", mallory); code == 0 || strings.Contains(out, "alice") || !strings.Contains(errs, "another key") {
		t.Fatalf("mallory reads alice's secret: exit %d, %q, %q", code, out, errs)
	}
	if _, err := os.Stat(alice); err != nil {
		t.Fatal(err)
	}
}
