package dhtkit

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/routing"
)

// TestSaveContactsConcurrently: the periodic save and the save at
// shutdown may run at once (SIGTERM near a periodic save). Each must
// succeed and leave a whole file, and no temporary file may be left.
func TestSaveContactsConcurrently(t *testing.T) {
	dir := t.TempDir()
	d := &dataDir{path: dir}
	tables := make([][]routing.Bucket, 8)
	want := map[string]bool{}
	for i := range tables {
		var cs []routing.Contact
		for j := range 50 {
			cs = append(cs, routing.Contact{
				ID:   id.ID{byte(i), byte(j), 1},
				Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, byte(i), byte(j)}), 6881),
			})
		}
		tables[i] = []routing.Bucket{{Contacts: cs}}
		var sb strings.Builder
		for _, c := range cs {
			fmt.Fprintf(&sb, "%v %v\n", c.Addr, c.ID)
		}
		want[sb.String()] = true
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(tables)*100)
	for i := range tables {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				if err := d.saveContacts(tables[i]); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a concurrent save failed: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, contactsFile))
	if err != nil {
		t.Fatal(err)
	}
	if !want[string(b)] {
		t.Errorf("the contacts file is not one whole save (%d bytes)", len(b))
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*tmp*"))
	if len(left) > 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}
