package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/spf13/cobra"
)

// The put flags of permanent puts and the cancel command.

// putFlags holds put's flags beyond the value and its signature.
type putFlags struct {
	permanent bool
}

// addPutFlags declares the flags of putFlags on put.
func addPutFlags(cmd *cobra.Command, p *putFlags) {
	cmd.Flags().BoolVar(&p.permanent, "permanent", false, "keep the value alive while the node at --api runs (and across its restarts with --data), until del or dhtkit cancel; --ttl then defaults to 10m")
}

// checkPutFlags refuses put's flags that do not go together, before
// anything is read or sent (numeric flags, --ttl included, are checked
// for every command by checkNumbers).
func checkPutFlags(sign bool, p putFlags) error {
	if p.permanent && sign {
		return usageError("--permanent and --sign: a signed value carries the expiry its owner signed; put it again with --sign to extend it")
	}
	return nil
}

// withPutQuery adds put's query (its TTL, permanence) to path.
func withPutQuery(path string, ttl time.Duration, sign bool, p putFlags) string {
	if ttl > 0 && !sign { // a signed value carries its expiry
		path = withQuery(path, "ttl", ttl.String())
	}
	if p.permanent {
		path = withQuery(path, "permanent", "true")
	}
	return path
}

func newCancelCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "cancel KEY",
		Short: "Stop keeping a permanent put alive",
		Long: `cancel stops the node at --api from keeping KEY's permanent put alive
(put --permanent): it writes it no more and forgets it in its data
directory. The value stays readable until it expires, within its TTL.
del KEY through the same node cancels too, and deletes the value at once.`,
		Args: keyArgs(1, 1, "one KEY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			resp, err := g.apiClient().do(cmd.Context(), http.MethodDelete, "/v1/permanent/"+url.PathEscape(args[0]), nil, "")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode == http.StatusNotFound {
				return notFound("%s: not a permanent put of the node at --api (dhtkit cancel asks the node that keeps it)", args[0])
			}
			if resp.StatusCode != http.StatusOK {
				return apiError(resp)
			}
			var out struct {
				Key       string `json:"key"`
				Cancelled bool   `json:"cancelled"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
				return fmt.Errorf("reading the node's answer: %w", err)
			}
			if asJSON {
				return json.NewEncoder(g.stdout).Encode(out)
			}
			fmt.Fprintf(g.stdout, "cancelled %s: it expires within its TTL\n", out.Key)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"key","cancelled"} as JSON`)
	return cmd
}
