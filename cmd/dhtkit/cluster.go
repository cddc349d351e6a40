package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/spf13/cobra"
)

func newKeysCmd(g *globals) *cobra.Command {
	var (
		after  string
		limit  int
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "keys [PREFIX]",
		Short: "List the keys across the network, one per line, sorted",
		Long: `keys lists the live keys that start with PREFIX across the network: the node
at --api merges its own with those of the nodes it knows (up to 64, asked in
parallel, each answer one datagram). It prints at most --limit keys; when
more follow it says so on stderr, with the command for the next page
(--after the last key). A node that did not answer is a warning: keys may
be missing.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageError("keys wants an optional PREFIX (%s)", helpHint(cmd))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{}
			if len(args) == 1 {
				q.Set("prefix", args[0])
			}
			if after != "" {
				q.Set("after", after)
			}
			q.Set("limit", strconv.Itoa(limit))
			var out struct {
				Keys     []string `json:"keys"`
				More     bool     `json:"more"`
				Next     string   `json:"next,omitempty"`
				Asked    int      `json:"asked"`
				Answered int      `json:"answered"`
				Partial  bool     `json:"partial"`
			}
			if err := g.apiClient().getJSON(cmd.Context(), http.MethodGet, "/v1/keys?"+q.Encode(), &out); err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(g.stdout).Encode(out)
			}
			for _, k := range out.Keys {
				fmt.Fprintln(g.stdout, k)
			}
			if out.Partial {
				fmt.Fprintf(g.stderr, "dhtkit: warning: %d of %d nodes answered; keys may be missing\n", out.Answered, out.Asked)
			}
			if out.More {
				fmt.Fprintf(g.stderr, "dhtkit: more keys follow: dhtkit keys %s--after %q\n", map[bool]string{true: strconv.Quote(q.Get("prefix")) + " "}[len(args) == 1], out.Next)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&after, "after", "", "list the keys after this one (the next page)")
	f.IntVar(&limit, "limit", 1000, "at most this many keys (up to 10000)")
	f.BoolVar(&asJSON, "json", false, `print {"keys","more","next","asked","answered","partial"} as JSON`)
	return cmd
}

func newMembersCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "members",
		Short: `The nodes the node at --api knows: "HOST:PORT NODEID STATE RTT" per line`,
		Long: `members prints the nodes in the routing table of the node at --api, each
with its state (good: answered lately; questionable: quiet for a while; bad:
stopped answering) and its smoothed round-trip time, then a count per state.`,
		Args: args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out struct {
				Self struct {
					ID   string `json:"id"`
					Addr string `json:"addr"`
				} `json:"self"`
				Members []struct {
					ID    string  `json:"id"`
					Addr  string  `json:"addr"`
					State string  `json:"state"`
					RTTMs float64 `json:"rtt_ms"`
					Fails int     `json:"fails"`
				} `json:"members"`
				States map[string]int `json:"states"`
			}
			var raw json.RawMessage
			if err := g.apiClient().getJSON(cmd.Context(), http.MethodGet, "/v1/members", &raw); err != nil {
				return err
			}
			if asJSON {
				_, err := fmt.Fprintf(g.stdout, "%s\n", raw)
				return err
			}
			if err := json.Unmarshal(raw, &out); err != nil {
				return fmt.Errorf("reading the node's answer: %w", err)
			}
			fmt.Fprintf(g.stdout, "%s %s self -\n", out.Self.Addr, out.Self.ID)
			for _, m := range out.Members {
				rtt := "-"
				if m.RTTMs > 0 {
					rtt = strconv.FormatFloat(m.RTTMs, 'f', 1, 64) + "ms"
				}
				fmt.Fprintf(g.stdout, "%s %s %s %s\n", m.Addr, m.ID, m.State, rtt)
			}
			if g.isTerminal(g.stdout) {
				fmt.Fprintf(g.stderr, "%d members: %d good, %d questionable, %d bad\n",
					len(out.Members), out.States["good"], out.States["questionable"], out.States["bad"])
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the node's answer as JSON")
	return cmd
}
