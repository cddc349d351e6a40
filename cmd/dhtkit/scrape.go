package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/dhtkit/dhtkit/kademlia"
)

// scrapeReport is what scrape prints with --json.
type scrapeReport struct {
	Infohash string  `json:"infohash"`
	Seeds    float64 `json:"seeds"` // BEP 33 estimate from the merged BFsd
	Peers    float64 `json:"peers"` // from the merged BFpe and legacy values
	Filters  int     `json:"nodes_with_filters"`
	Legacy   int     `json:"nodes_without_filters"` // answered values only (no BEP 33)
	Values   int     `json:"values"`                // distinct peers the lookup returned
	BFsd     string  `json:"bfsd"`                  // the merged filters, hex
	BFpe     string  `json:"bfpe"`
}

func newScrapeCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "scrape INFOHASH --bootstrap HOST:PORT",
		Short: "Estimate a swarm's seeds and peers from the DHT (BEP 33)",
		Long: `scrape joins through --bootstrap and runs a get_peers lookup for INFOHASH
with scrape=1: every node asked that stores the swarm answers with two Bloom
filters (2048 bits, 2 hashes), of its seeds' addresses and of its other peers'.
scrape ORs the filters of every node and prints BEP 33's estimates of the two
counts. Nodes without BEP 33 count through the peers they return. Estimates
count addresses, not ports, and stop being meaningful past about 6000.`,
		Args: args(1, "one INFOHASH"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ih, err := parseInfohash(args[0])
			if err != nil {
				return err
			}
			if len(g.bootstrap) == 0 {
				return usageError("scrape joins the network itself: give --bootstrap HOST:PORT")
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
			defer cancel()
			n, err := g.client(ctx, "scrape", true)
			if err != nil {
				return err
			}
			defer n.Close()
			res, err := n.Do(ctx, kademlia.GetPeers{InfoHash: ih, Scrape: true})
			if err != nil {
				return fmt.Errorf("scrape %v: %w", ih, err)
			}
			s := res.Scrape
			if s == nil {
				return fmt.Errorf("scrape %v: the lookup returned no scrape", ih)
			}
			rep := scrapeReport{Infohash: ih.String(), Seeds: s.SeedCount(), Peers: s.PeerCount(),
				Filters: s.Filters, Legacy: s.Legacy, Values: len(res.Peers),
				BFsd: hex.EncodeToString(s.Seeds[:]), BFpe: hex.EncodeToString(s.Peers[:])}
			if asJSON {
				return json.NewEncoder(g.stdout).Encode(rep)
			}
			fmt.Fprintf(g.stdout, "infohash:  %s\n", rep.Infohash)
			fmt.Fprintf(g.stdout, "seeds:     %.1f\n", rep.Seeds)
			fmt.Fprintf(g.stdout, "peers:     %.1f\n", rep.Peers)
			fmt.Fprintf(g.stdout, "nodes:     %d answered with filters, %d with values only\n", rep.Filters, rep.Legacy)
			fmt.Fprintf(g.stdout, "values:    %d peers returned\n", rep.Values)
			if rep.Filters == 0 && rep.Legacy == 0 {
				return notFound("no node stores %v", ih)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object, with the merged filters in hex")
	return cmd
}
