package dhtkit

import (
	"fmt"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/seal"
)

// keyPoll is how often a node checks its key file for changes: operators
// and tests rotate keys by editing the file, with no signal to send.
const keyPoll = time.Second

// networkKey is a node's key file and the sealer that uses it.
type networkKey struct {
	path string
	ring *seal.Keyring // the keyring first loaded; the sealer holds the current one

	mu   sync.Mutex // guards seen and s
	seen keyFileState
	s    *seal.Sealer
}

// keyFileState is what tells that a key file changed: an editor that
// writes a new file and renames it changes the inode, one that writes in
// place the size or the time.
type keyFileState struct {
	mod  time.Time
	size int64
	ino  uint64
}

func statKeyFile(path string) (keyFileState, error) {
	st, err := os.Stat(path)
	if err != nil {
		return keyFileState{}, err
	}
	return keyFileState{mod: st.ModTime(), size: st.Size(), ino: inode(st)}, nil
}

func loadNetworkKey(path string) (*networkKey, error) {
	seen, _ := statKeyFile(path)
	ring, err := seal.LoadKeyring(path)
	if err != nil {
		return nil, fmt.Errorf("dhtkit: %w", err)
	}
	return &networkKey{path: path, ring: ring, seen: seen}, nil
}

func (k *networkKey) sealer(self id.ID) *seal.Sealer {
	k.s = seal.New(k.ring, self, seal.Config{})
	return k.s
}

// reload reads the key file again if force is set or it changed. It keeps
// the keyring in use when the file cannot be read or holds no valid
// keyring: a typo during a rotation must not cut the node off.
func (k *networkKey) reload(force bool) (changed bool, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	seen, err := statKeyFile(k.path)
	if err != nil {
		return false, fmt.Errorf("dhtkit: network key %s: %w; the node keeps its keys", k.path, err)
	}
	if !force && seen == k.seen {
		return false, nil
	}
	k.seen = seen
	ring, err := seal.LoadKeyring(k.path)
	if err != nil {
		return false, fmt.Errorf("dhtkit: %w; the node keeps its keys", err)
	}
	k.s.SetKeyring(ring)
	return true, nil
}

// ReloadNetworkKey reads the node's key file again (what SIGHUP does to
// `dhtkit node`); the node also does it by itself within a second of the
// file changing. A file that cannot be read or parsed leaves the keys in
// use unchanged and is reported. A node without a network key returns nil.
func (n *Node) ReloadNetworkKey() error {
	if n.key == nil {
		return nil
	}
	changed, err := n.key.reload(true)
	if changed {
		n.logKeyring()
	}
	return err
}

func (n *Node) logKeyring() {
	ids := n.key.s.Keyring().IDs()
	n.log.Info("network key loaded", "file", n.key.path, "seals_with", ids[0], "opens_with", ids)
}

func (n *Node) watchNetworkKey() {
	defer n.wg.Done()
	t := time.NewTicker(keyPoll)
	defer t.Stop()
	var lastErr string
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		changed, err := n.key.reload(false)
		switch {
		case err != nil && err.Error() != lastErr:
			lastErr = err.Error()
			n.log.Error(lastErr)
		case changed:
			lastErr = ""
			n.logKeyring()
		}
	}
}

// NetworkKeyIDs returns the ids of the network keys in use (8 hex digits
// each, the sealing key first; never the keys), or nil without a key.
func (n *Node) NetworkKeyIDs() []string {
	if n.key == nil {
		return nil
	}
	return n.key.s.Keyring().IDs()
}

// SealStats returns the counters of the datagrams sealed, opened and
// dropped (undecryptable, replayed, stale); zero without a network key.
func (n *Node) SealStats() seal.Stats {
	if n.key == nil {
		return seal.Stats{}
	}
	return n.key.s.Stats()
}

// openNetworkWarning is what a keyless private node says when it listens
// off loopback.
func openNetworkWarning(addr netip.AddrPort) string {
	return fmt.Sprintf("this node has no network key: anyone who can reach UDP port %d can read, change and delete its data; "+
		"make a key with `dhtkit network-key FILE`, copy it to every node and start them with --network-key FILE", addr.Port())
}
