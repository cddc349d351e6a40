package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/dhtkit/dhtkit/id"
	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/krpc"
)

// itemJSON is the HTTP API's form of a BEP 44 item.
type itemJSON struct {
	Target string `json:"target,omitempty"`
	V      []byte `json:"v"`
	K      []byte `json:"k,omitempty"`
	Sig    []byte `json:"sig,omitempty"`
	Salt   []byte `json:"salt,omitempty"`
	Seq    int64  `json:"seq"`
	CAS    *int64 `json:"cas,omitempty"`
}

func newItemCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "item",
		Short: "Store and fetch BEP 44 items (immutable, or mutable and signed)",
	}
	cmd.AddCommand(newItemPutCmd(g), newItemGetCmd(g))
	return cmd
}

// doItem runs an item operation through a client node when --bootstrap
// is given, else through the node at --api.
func (g *globals) doItem(ctx context.Context, op kademlia.Op) (kademlia.Result, error) {
	n, err := g.client(ctx, "item", false)
	if err != nil {
		return kademlia.Result{}, err
	}
	defer n.Close()
	return n.Do(ctx, op)
}

func newItemPutCmd(g *globals) *cobra.Command {
	var (
		seed, salt string
		seq, cas   int64
	)
	cmd := &cobra.Command{
		Use:   "put VALUE",
		Short: "Store VALUE as a BEP 44 item and print its target",
		Long: `item put stores VALUE (as a bencoded string) as an immutable BEP 44 item, or,
with --seed, as a mutable item signed with that ed25519 seed (64 hex digits,
never sent anywhere), under --salt with sequence number --seq. It prints the
item's target.`,
		Args: args(1, "one VALUE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := krpc.AppendValue(nil, args[0])
			if err != nil {
				return err
			}
			it := kademlia.Item{V: v}
			if seed != "" {
				s, err := hex.DecodeString(seed)
				if err != nil || len(s) != ed25519.SeedSize {
					return usageError("--seed: want 64 hex digits (an ed25519 seed)")
				}
				it = kademlia.SignItem(ed25519.NewKeyFromSeed(s), []byte(salt), seq, v)
			} else if salt != "" || cmd.Flags().Changed("seq") {
				return usageError("--salt and --seq make sense only with --seed (a mutable item)")
			}
			if err := it.Validate(); err != nil {
				return usageError("%v", err)
			}
			op := kademlia.PutItem{Item: it}
			if cmd.Flags().Changed("cas") {
				op.CAS, op.UseCAS = cas, true
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
			defer cancel()
			if len(g.bootstrap) > 0 {
				if _, err := g.doItem(ctx, op); err != nil {
					return fmt.Errorf("item put: %w", err)
				}
			} else {
				in := itemJSON{V: it.V, K: it.K, Sig: it.Sig, Salt: it.Salt, Seq: it.Seq}
				if op.UseCAS {
					in.CAS = &cas
				}
				body, _ := json.Marshal(in)
				resp, err := g.apiClient().do(ctx, http.MethodPost, "/v1/items", bytes.NewReader(body), "application/json")
				if err != nil {
					return fmt.Errorf("item put: %w", err)
				}
				resp.Body.Close()
			}
			fmt.Fprintln(g.stdout, it.Target())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&seed, "seed", "", "ed25519 seed, 64 hex digits: makes a mutable item")
	f.StringVar(&salt, "salt", "", "salt of a mutable item")
	f.Int64Var(&seq, "seq", 0, "sequence number of a mutable item")
	f.Int64Var(&cas, "cas", 0, "store only if the stored seq equals this (compare-and-swap)")
	return cmd
}

func newItemGetCmd(g *globals) *cobra.Command {
	var pubkey, salt string
	cmd := &cobra.Command{
		Use:   "get [TARGET]",
		Short: "Fetch a BEP 44 item and print its value",
		Long: `item get fetches the item at TARGET (40 hex digits), or the mutable item of
--pubkey (64 hex digits) and --salt, verifies it, and prints its value (and
"seq N" for a mutable item). Exit status 3 if no node has it.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var target id.ID
			switch {
			case pubkey != "" && len(args) == 0:
				k, err := hex.DecodeString(pubkey)
				if err != nil || len(k) != ed25519.PublicKeySize {
					return usageError("--pubkey: want 64 hex digits (an ed25519 public key)")
				}
				target = kademlia.ItemTarget(k, []byte(salt), nil)
			case pubkey == "" && len(args) == 1:
				t, err := id.Parse(args[0])
				if err != nil {
					return usageError("TARGET %q: want 40 hex digits", args[0])
				}
				target = t
			default:
				return usageError("give TARGET or --pubkey, one of them")
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
			defer cancel()
			var it kademlia.Item
			if len(g.bootstrap) > 0 {
				res, err := g.doItem(ctx, kademlia.GetItem{Target: target, Salt: []byte(salt)})
				if errors.Is(err, kademlia.ErrNotFound) {
					return notFound("no node has item %v", target)
				}
				if err != nil {
					return fmt.Errorf("item get: %w", err)
				}
				it = *res.Item
			} else {
				var out itemJSON
				path := "/v1/items/" + target.String()
				if salt != "" {
					path += "?salt=" + url.QueryEscape(salt)
				}
				if err := g.apiClient().getJSON(ctx, http.MethodGet, path, &out); err != nil {
					return err
				}
				it = kademlia.Item{V: out.V, K: out.K, Sig: out.Sig, Salt: []byte(salt), Seq: out.Seq}
				if err := it.Validate(); err != nil || it.Target() != target {
					return fmt.Errorf("item get: the node returned an item that does not verify")
				}
			}
			w, flush := terminalSafe(g.stdout)
			fmt.Fprintln(w, printable(it.V))
			if err := flush(); err != nil {
				return err
			}
			if it.Mutable() {
				fmt.Fprintln(g.stdout, "seq "+strconv.FormatInt(it.Seq, 10))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&pubkey, "pubkey", "", "public key of a mutable item, 64 hex digits")
	cmd.Flags().StringVar(&salt, "salt", "", "salt of a mutable item")
	return cmd
}

// printable shows a bencoded string as the string, anything else as its
// bencoding.
func printable(v []byte) string {
	if x, err := krpc.Unmarshal(v); err == nil {
		if s, ok := x.([]byte); ok {
			return string(s)
		}
	}
	return string(v)
}
