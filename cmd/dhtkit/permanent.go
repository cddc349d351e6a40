package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	"github.com/dhtkit/dhtkit/store"
)

// put's flags for permanent puts and conditional writes, and the cancel
// command.

// putFlags holds put's flags beyond the value and its signature.
type putFlags struct {
	permanent bool
	ifVersion string
	ifAbsent  bool
}

// addPutFlags declares the flags of putFlags on put.
func addPutFlags(cmd *cobra.Command, p *putFlags) {
	f := cmd.Flags()
	f.BoolVar(&p.permanent, "permanent", false, "keep the value alive while the node at --api runs (and across its restarts with --data), until del or dhtkit cancel; --ttl then defaults to 10m")
	f.StringVar(&p.ifVersion, "if-version", "", "write only if the key's value has this version (as put and get --json print it); else exit 1 naming the current version")
	f.BoolVar(&p.ifAbsent, "if-absent", false, "write only if the key has no value; else exit 1 naming the current version")
}

// checkPutFlags refuses put's flags that do not go together or do not
// parse, before anything is read or sent (numeric flags, --ttl included,
// are checked for every command by checkNumbers).
func checkPutFlags(sign bool, p putFlags) error {
	conditional := p.ifAbsent || p.ifVersion != ""
	switch {
	case p.permanent && sign:
		return usageError("--permanent and --sign: a signed value carries the expiry its owner signed; put it again with --sign to extend it")
	case p.ifAbsent && p.ifVersion != "":
		return usageError("--if-absent and --if-version: give one")
	case conditional && sign:
		return usageError("--if-version/--if-absent and --sign: a signed value carries its owner's version, which already orders its writes")
	case conditional && p.permanent:
		return usageError("--if-version/--if-absent and --permanent: a conditional write is decided once; its refreshes could not be")
	}
	if p.ifVersion != "" {
		if v, err := store.ParseVersion(p.ifVersion); err != nil || v.IsZero() {
			return usageError("--if-version %q: want a version as put prints it (32 hex digits)", p.ifVersion)
		}
	}
	return nil
}

// withPutQuery adds put's query (its TTL, permanence, condition) to path.
func withPutQuery(path string, ttl time.Duration, sign bool, p putFlags) string {
	if ttl > 0 && !sign { // a signed value carries its expiry
		path = withQuery(path, "ttl", ttl.String())
	}
	if p.permanent {
		path = withQuery(path, "permanent", "true")
	}
	if p.ifVersion != "" {
		path = withQuery(path, "if-version", p.ifVersion)
	}
	if p.ifAbsent {
		path = withQuery(path, "if-absent", "true")
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
