package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/dhtkit/dhtkit/seal"
)

// The cost of a network key: "dhtkit-private" is a dhtkit node of a
// private network without a key, "dhtkit-sealed" the same with a network
// key, so that the two rows of one run differ by the sealing alone. The
// generator seals every query as it sends it (the server drops a datagram
// it has seen), and the primed contacts answer sealed queries sealed.
const (
	loadNetwork = "dhtload"
	keyEnv      = "DHTLOAD_NETWORK_KEY" // the key file, for the server child
)

// netKey is the private network a server runs: its name, and its keyring
// when it seals.
type netKey struct {
	name string
	ring *seal.Keyring
}

// forServer is the network of the server named name.
func (k netKey) forServer(name string) netKey {
	switch name {
	case "dhtkit-private":
		return netKey{name: loadNetwork}
	case "dhtkit-sealed":
		return k
	}
	return netKey{}
}

// newNetKey writes a network key to a temporary file that the server
// children find through keyEnv.
func newNetKey() (netKey, func(), error) {
	dir, err := os.MkdirTemp("", "dhtload-key-")
	if err != nil {
		return netKey{}, nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	path := filepath.Join(dir, "network.key")
	if err := seal.WriteKeyFile(path); err != nil {
		cleanup()
		return netKey{}, nil, err
	}
	ring, err := seal.LoadKeyring(path)
	if err != nil {
		cleanup()
		return netKey{}, nil, fmt.Errorf("the generator's own key: %w", err)
	}
	os.Setenv(keyEnv, path)
	return netKey{name: loadNetwork, ring: ring}, cleanup, nil
}
