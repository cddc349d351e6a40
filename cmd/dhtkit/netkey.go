package main

import (
	"fmt"

	"github.com/spf13/cobra"

	netseal "github.com/dhtkit/dhtkit/seal"
)

func newNetworkKeyCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "network-key FILE",
		Short: "Write a new random network key to FILE (mode 0600)",
		Long: `network-key writes a new random network key to FILE, readable by its owner
only, and never overwrites a file. Copy it to every node of a private network
and start them with --network-key FILE: every datagram is then sealed, and a
host without the key gets no answer. A key file may hold several keys, one
per line: the first seals, every one opens (see README, "Rotating keys").`,
		Args: args(1, "one FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := netseal.WriteKeyFile(args[0]); err != nil {
				return fmt.Errorf("network-key: %w", err)
			}
			fmt.Fprintf(g.stdout, "wrote a new network key to %s\n", args[0])
			return nil
		},
	}
}
