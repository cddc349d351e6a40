package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dhtkit/dhtkit"
	"github.com/dhtkit/dhtkit/owner"
	"github.com/dhtkit/dhtkit/store"
)

// parseIDFlag reads --id: empty for the default value, 1 to 16 hex
// digits, or (where a new value is written) "random".
func parseIDFlag(s string, random bool) (store.ValueID, error) {
	switch {
	case s == "":
		return store.DefaultValue, nil
	case s == "random" && random:
		return dhtkit.NewValueID(), nil
	}
	v, err := store.ParseValueID(s)
	if err != nil {
		if random {
			return 0, usageError("--id %q: want 1 to 16 hexadecimal digits, or random", s)
		}
		return 0, usageError("--id %q: want 1 to 16 hexadecimal digits", s)
	}
	return v, nil
}

// listedValue is one value of GET /v1/values/{key}.
type listedValue struct {
	Key       string     `json:"key"`
	ID        string     `json:"id"`
	Version   string     `json:"version"`
	Size      int64      `json:"size"`
	Value     []byte     `json:"value"`
	Expires   *time.Time `json:"expires,omitempty"`
	Signer    string     `json:"signer,omitempty"`
	Partial   bool       `json:"partial,omitempty"`
	Truncated bool       `json:"truncated,omitempty"`
}

// recordKey is the record key of a listed value.
func (v listedValue) recordKey() string {
	id, _ := store.ParseValueID(v.ID)
	return store.ValueKey(v.Key, id)
}

// values lists every live value of key, newest first (nil when none);
// without data, their sizes, versions and signers only.
func (a *api) values(ctx context.Context, key string, data, partial bool) ([]listedValue, error) {
	path := "/v1/values/" + url.PathEscape(key)
	if !data {
		path = withQuery(path, "data", "0")
	}
	if partial {
		path = withQuery(path, "partial", "true")
	}
	resp, err := a.do(ctx, http.MethodGet, path, nil, "")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, nil
	}
	var out struct {
		Values []listedValue `json:"values"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("reading the node's answer: %w", err)
	}
	return out.Values, nil
}

// openValue unwraps a signed or encrypted value of record key rk: its
// payload and signer (nil: unsigned). A plain value is its own payload.
func (g *globals) openValue(rk string, v []byte, idPath string) ([]byte, ed25519.PublicKey, error) {
	if !isEnvelope(v[:min(4, len(v))]) {
		return v, nil, nil
	}
	var priv *[32]byte
	inner := v
	if e, err := owner.Parse(v); err == nil {
		inner = e.Payload
	}
	if strings.HasPrefix(string(inner), "DKE\x01") {
		id, err := loadIdentity(keyFile(idPath), false)
		if err != nil {
			return nil, nil, fmt.Errorf("%q is encrypted: %w", store.BaseKey(rk), err)
		}
		priv = &id.Decrypt
	}
	o, err := dhtkit.Open(rk, v, priv)
	if err != nil {
		return nil, nil, err
	}
	return o.Payload, o.Signer, nil
}

// printValues prints every live value of key, newest first: each opened
// (signed, encrypted) and ended by a newline, or with asJSON one getJSON
// per line. With signer, only the values it signed; none is an error.
func (g *globals) printValues(ctx context.Context, key, idPath string, signer ed25519.PublicKey, asJSON, partial bool) error {
	a := g.apiClient()
	vals, err := a.values(ctx, key, true, partial)
	if err != nil {
		return err
	}
	out, flush := terminalSafe(g.stdout) // values must not drive the terminal
	printed := 0
	for _, v := range vals {
		rk := v.recordKey()
		data := v.Value
		if v.Truncated {
			if data, err = a.read(ctx, rk); err != nil {
				return err
			}
		}
		payload, by, err := g.openValue(rk, data, idPath)
		if err != nil {
			fmt.Fprintf(g.stderr, "dhtkit: value %s: %v\n", v.ID, err)
			continue
		}
		if signer != nil && !signer.Equal(by) {
			continue
		}
		printed++
		if asJSON {
			j := getJSON{Key: key, Version: v.Version, Size: int64(len(payload)), Value: payload, Partial: v.Partial, ID: v.ID}
			if by != nil {
				j.Signer = hex.EncodeToString(by)
			}
			if utf8.Valid(payload) {
				t := string(payload)
				j.Text = &t
			}
			if err := json.NewEncoder(g.stdout).Encode(j); err != nil {
				return err
			}
			continue
		}
		if by != nil {
			fmt.Fprintf(g.stderr, "dhtkit: value %s signed by %x (verified)\n", v.ID, []byte(by))
		}
		out.Write(payload)
		if len(payload) == 0 || payload[len(payload)-1] != '\n' {
			fmt.Fprintln(out)
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if printed == 0 && signer != nil {
		return fmt.Errorf("%w: no value of %q is signed by %x", dhtkit.ErrSigner, key, []byte(signer))
	}
	return nil
}

// read fetches the value of record key rk whole.
func (a *api) read(ctx context.Context, rk string) ([]byte, error) {
	resp, err := a.do(ctx, http.MethodGet, keyPath(rk), nil, "")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, notFound("%s has no value", rk)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxSealed+1024))
	if err != nil {
		return nil, fmt.Errorf("get %q: the transfer broke off: %w", store.BaseKey(rk), err)
	}
	return b, nil
}

// deleteAll deletes every value of key: with sign, first each value the
// identity signed (its signed delete), then the unsigned ones
// (DELETE /v1/values/{key}). A key that never held more than its default
// value is deleted as before.
func (g *globals) deleteAll(ctx context.Context, key string, sign bool, idPath string, asJSON bool) error {
	vals, err := g.apiClient().values(ctx, key, false, false)
	if err != nil {
		return err
	}
	if len(vals) == 0 || len(vals) == 1 && vals[0].recordKey() == key {
		// Nothing, or the default value alone: as single-value use always did.
		return g.deleteOne(ctx, key, sign, idPath, asJSON)
	}
	deleted := 0
	if sign {
		id, err := loadIdentity(keyFile(idPath), false)
		if err != nil {
			return err
		}
		mine := hex.EncodeToString(id.SignPublic())
		for _, v := range vals {
			if v.Signer != mine {
				continue
			}
			if err := g.deleteOne(ctx, v.recordKey(), true, idPath, false); err != nil {
				return fmt.Errorf("value %s: %w", v.ID, err)
			}
			deleted++
		}
	}
	resp, err := g.apiClient().do(ctx, http.MethodDelete, "/v1/values/"+url.PathEscape(key), nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var out struct {
		Key     string `json:"key"`
		Deleted bool   `json:"deleted"`
		Values  int    `json:"values"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return fmt.Errorf("reading the node's answer: %w", err)
	}
	out.Values += deleted
	if asJSON {
		return json.NewEncoder(g.stdout).Encode(out)
	}
	return nil
}
