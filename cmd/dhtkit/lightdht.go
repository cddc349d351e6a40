package main

import (
	"github.com/dhtkit/dhtkit"
	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/routing"
)

// maxClientVersion bounds --client-version: BEP 5's "v" is a short tag
// (4 bytes by convention), and every message carries it.
const maxClientVersion = 16

// lightDHT applies a research node's flags (LightDHT's knobs) to kc: the
// routing table, the client version and the node id.
func lightDHT(kc *kademlia.Config, table, clientVersion, nodeID, dataDir, protocol string) error {
	switch table {
	case "", "bep5":
	case "keepall":
		if protocol != dhtkit.Kademlia {
			return usageError("--table keepall is Kademlia's routing table: drop it, or use --protocol kademlia")
		}
		kc.NewTable = func(self id.ID, k int) routing.Table { return routing.NewKeepAll(self, k, nil) }
	default:
		return usageError("--table %q: want bep5 or keepall", table)
	}
	if clientVersion != "" {
		if len(clientVersion) > maxClientVersion {
			return usageError("--client-version %q: at most %d bytes", clientVersion, maxClientVersion)
		}
		kc.Version = []byte(clientVersion)
	}
	if nodeID != "" {
		x, err := id.Parse(nodeID)
		if err != nil {
			return usageError("--node-id %q: want 40 hex digits", nodeID)
		}
		if dataDir != "" {
			return usageError("--node-id with --data: the data directory keeps its id in %s/node-id; write it there, or drop --data", dataDir)
		}
		kc.ID = x
	}
	return nil
}
