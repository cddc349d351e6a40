package dhtkit

import (
	"bufio"
	"encoding/json"
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
//	values.db.wal  the writes since values.db's last checkpoint (store/wal.go)
//	contacts       the routing table's contacts, "HOST:PORT NODEID" per line,
//	               tried as bootstrap nodes on the next start
//	permanent      the node's permanent puts (permanent.go), a JSON array of
//	               {"key", "value" (base64), "ttl" (ns), "version"}; saved
//	               whole (temporary file, fsync, rename, fsync of the
//	               directory) before a permanent put is acknowledged
const (
	idFile        = "node-id"
	valuesFile    = "values.db"
	contactsFile  = "contacts"
	permanentFile = "permanent"
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
	// permanent is the list of permanent puts the last run kept.
	permanent []permanentRecord
}

// openDataDir opens the data directory at path. A damaged values.db stops
// the open with one line that names it and says what to do, unless
// moveDamaged is set: then the file is set aside (store.MoveDamaged) and
// the node starts with an empty store, which the other replicas refill.
func openDataDir(path string, limits store.Config, moveDamaged bool) (*dataDir, error) {
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
	if d.permanent, err = loadPermanent(filepath.Join(path, permanentFile)); err != nil {
		return nil, fmt.Errorf("dhtkit: data directory %s: %w", path, err)
	}
	values := filepath.Join(path, valuesFile)
	d.store, err = store.OpenBolt(values, limits)
	if errors.Is(err, store.ErrDamaged) && moveDamaged {
		to, merr := store.MoveDamaged(values, time.Now())
		if merr != nil {
			return nil, fmt.Errorf("dhtkit: data directory: %w (after: %w)", merr, err)
		}
		limits.Logger.Warn("moved the damaged store aside; starting with an empty one, which the other replicas refill",
			"damaged", to, "err", err)
		d.store, err = store.OpenBolt(values, limits)
	}
	if errors.Is(err, store.ErrDamaged) {
		return nil, fmt.Errorf("dhtkit: data directory: %w; start the node with --move-damaged (Config.MoveDamaged) to set the file aside and refill it from the other replicas", err)
	}
	if errors.Is(err, bolterrors.ErrTimeout) {
		// bbolt's lock is held: say who holds it, not "timeout".
		return nil, fmt.Errorf("dhtkit: data directory %s is %w by another process (another dhtkit node with the same --data?): give each node its own --data", path, ErrDataDirInUse)
	}
	if err != nil {
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
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	// The rename is durable once the directory is: without this a crash
	// may bring back the old file, or none.
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}

// loadPermanent reads the list of permanent puts saved at path; none when
// the file does not exist. A damaged file stops the start: starting
// without it would silently drop the user's permanent puts.
func loadPermanent(path string) ([]permanentRecord, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var list []permanentRecord
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("the list of permanent puts, %s, is damaged (%w): move it aside to start without them, then put them again with --permanent", path, err)
	}
	for _, r := range list {
		if r.Key == "" || r.TTL < MinPermanentTTL || len(r.Value) > chunkSize || len(list) > MaxPermanent {
			return nil, fmt.Errorf("the list of permanent puts, %s, is damaged (an entry for %q is not a permanent put): move it aside to start without them", path, shortKey(r.Key))
		}
	}
	return list, nil
}

// savePermanent replaces the saved list of permanent puts with list.
func (d *dataDir) savePermanent(list []permanentRecord) error {
	if list == nil {
		list = []permanentRecord{}
	}
	b, err := json.Marshal(list)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(d.path, permanentFile), b)
}
