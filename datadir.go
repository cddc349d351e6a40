package dhtkit

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/routing"
	"github.com/dhtkit/dhtkit/store"
)

// A data directory holds what a node keeps across restarts:
//
//	node-id        the node id, 40 hex digits
//	values.db      the stored records (bbolt; every acknowledged write is on disk)
//	contacts       the routing table's contacts, "HOST:PORT NODEID" per line,
//	               tried as bootstrap nodes on the next start
const (
	idFile       = "node-id"
	valuesFile   = "values.db"
	contactsFile = "contacts"
)

// ErrDataDirInUse is the error Listen returns when another process, most
// likely another node, holds Config.DataDir.
var ErrDataDirInUse = errors.New("in use")

// dataDir is an opened data directory.
type dataDir struct {
	path     string
	id       id.ID
	store    *store.Bolt
	contacts []netip.AddrPort
}

func openDataDir(path string, limits store.Config) (*dataDir, error) {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("dhtkit: data directory: %w", err)
	}
	d := &dataDir{path: path}
	b, err := os.ReadFile(filepath.Join(path, idFile))
	switch {
	case err == nil:
		if d.id, err = id.Parse(strings.TrimSpace(string(b))); err != nil {
			return nil, fmt.Errorf("dhtkit: data directory %s: %s is corrupt: %w", path, idFile, err)
		}
	case errors.Is(err, fs.ErrNotExist):
		d.id = id.Random(nil)
		if err := writeFileAtomic(filepath.Join(path, idFile), []byte(d.id.String()+"\n")); err != nil {
			return nil, fmt.Errorf("dhtkit: data directory: saving the node id: %w", err)
		}
	default:
		return nil, fmt.Errorf("dhtkit: data directory: %w", err)
	}
	if f, err := os.Open(filepath.Join(path, contactsFile)); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			addr, _, _ := strings.Cut(sc.Text(), " ")
			if a, err := netip.ParseAddrPort(addr); err == nil {
				d.contacts = append(d.contacts, a)
			}
		}
		f.Close()
	}
	if d.store, err = store.OpenBolt(filepath.Join(path, valuesFile), limits); err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			// bbolt's lock is held: say who holds it, not "timeout".
			return nil, fmt.Errorf("dhtkit: data directory %s is %w by another process (another dhtkit node with the same --data?): give each node its own --data", path, ErrDataDirInUse)
		}
		return nil, fmt.Errorf("dhtkit: data directory: %w", err)
	}
	// Drop what expired while the node was down before serving anything.
	if _, err := d.store.Expire(time.Now()); err != nil {
		d.store.Close()
		return nil, fmt.Errorf("dhtkit: data directory: %w", err)
	}
	return d, nil
}

// saveContacts writes the routing table's contacts for the next start.
func (d *dataDir) saveContacts(buckets []routing.Bucket) error {
	var sb strings.Builder
	for _, b := range buckets {
		for _, c := range b.Contacts {
			if c.State != routing.Bad {
				fmt.Fprintf(&sb, "%v %v\n", c.Addr, c.ID)
			}
		}
	}
	return writeFileAtomic(filepath.Join(d.path, contactsFile), []byte(sb.String()))
}

// writeFileAtomic replaces path with b: written to a temporary file of its
// own in the same directory, synced, then renamed over path. Each call
// has its own temporary file, so that two saves at once (the periodic
// save and the one at shutdown) never rename each other's file away; the
// later rename wins, and both leave a whole file.
func writeFileAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename there is nothing left to remove
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
