package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dhtkit/dhtkit"
)

// maxSealed is the largest value put --sign or --encrypt-to seals: it is
// sealed in memory.
const maxSealed = 64 << 20

// keyFile is where the person's identity lives: --key, else $DHTKIT_KEY,
// else dhtkit/identity in the user's configuration directory.
func keyFile(flag string) string {
	if flag != "" {
		return flag
	}
	if env := os.Getenv("DHTKIT_KEY"); env != "" {
		return env
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		dir = "."
	}
	return filepath.Join(dir, "dhtkit", "identity")
}

// loadIdentity reads the identity (a 64-hex-digit seed); create makes one
// when the file does not exist.
func loadIdentity(path string, create bool) (dhtkit.Identity, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && create {
		id, err := dhtkit.NewIdentity(nil)
		if err != nil {
			return id, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return id, fmt.Errorf("saving a new identity: %w", err)
		}
		seed := hex.EncodeToString(id.Sign.Seed()) + "\n"
		if err := os.WriteFile(path, []byte(seed), 0o600); err != nil {
			return id, fmt.Errorf("saving a new identity: %w", err)
		}
		return id, nil
	}
	if err != nil {
		return dhtkit.Identity{}, fmt.Errorf("identity %s: %w (create one with `dhtkit key`)", path, err)
	}
	seed, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(seed) != 32 {
		return dhtkit.Identity{}, fmt.Errorf("identity %s: want 64 hex digits", path)
	}
	return dhtkit.NewIdentity(seed)
}

func newKeyCmd(g *globals) *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Print your public keys (creating your identity on first use)",
		Long: `key prints the public keys of your identity: "sign PUBKEY", which readers of
your signed values see, and "encrypt PUBKEY", which others pass to
put --encrypt-to to write values only you can read. The identity is a seed
kept in --key (default $DHTKIT_KEY, else dhtkit/identity in your
configuration directory), made on first use; keep it secret.`,
		Args: args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := loadIdentity(keyFile(path), true)
			if err != nil {
				return err
			}
			pub := id.EncryptPublic()
			fmt.Fprintf(g.stdout, "sign %x\nencrypt %x\n", []byte(id.SignPublic()), pub[:])
			return nil
		},
	}
	cmd.Flags().StringVar(&path, "key", "", "identity file")
	return cmd
}
