package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/dhtkit/dhtkit"
	"github.com/dhtkit/dhtkit/owner"
	"github.com/dhtkit/dhtkit/store"
)

func newPutCmd(g *globals) *cobra.Command {
	var (
		file      string
		ttl       time.Duration
		sign      bool
		encryptTo string
		key       string
		asJSON    bool
		heir      string
		idFlag    string
		extra     putFlags // permanent.go
	)
	cmd := &cobra.Command{
		Use:   "put KEY [VALUE]",
		Short: "Store a value (VALUE, else --file PATH, else standard input)",
		Long: `put stores a value under KEY through the node at --api: VALUE, else the file
at --file, else standard input, streamed (any size: large values are split
into verified chunks). It prints the version once a write quorum of the
key's replicas holds it.

A key holds many values: --id ID adds or replaces the value with that id
(1 to 16 hex digits, or "random" for a new one, printed on stderr); without
--id, put writes the key's default value, as single-value use always has.`,
		Args: keyArgs(1, 2, "KEY and an optional VALUE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkPutFlags(sign, extra); err != nil {
				return err
			}
			if cmd.Flags().Changed("ttl") && ttl <= 0 {
				return usageError("--ttl %v: want a positive duration such as 90s, 30m or 24h (%s)", ttl, helpHint(cmd))
			}
			vid, err := parseIDFlag(idFlag, true)
			if err != nil {
				return err
			}
			if idFlag == "random" {
				fmt.Fprintf(g.stderr, "dhtkit: value id %s\n", vid)
			}
			rk := store.ValueKey(args[0], vid) // what a signature covers
			var to *[32]byte
			if encryptTo != "" {
				b, err := hex.DecodeString(encryptTo)
				if err != nil || len(b) != 32 {
					return usageError("--encrypt-to: want the 64-hex-digit \"encrypt\" key that `dhtkit key` prints")
				}
				to = (*[32]byte)(b)
			}
			var body io.Reader
			var size int64 = -1
			switch {
			case len(args) == 2:
				if file != "" {
					return usageError("give VALUE or --file, not both")
				}
				body, size = strings.NewReader(args[1]), int64(len(args[1]))
			case file != "":
				f, err := os.Open(file)
				if err != nil {
					return fmt.Errorf("--file: %w", err)
				}
				defer f.Close()
				// A pipe's size (put --file <(cmd), a FIFO) is 0 whatever
				// it holds: only a regular file's is its length.
				if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
					size = st.Size()
				}
				body = f
			default:
				if g.isTerminal(os.Stdin) {
					fmt.Fprintln(g.stderr, "dhtkit: reading the value from standard input; end it with Ctrl-D (or give VALUE or --file)")
				}
				body = os.Stdin
			}
			if heir != "" && !sign {
				return usageError("--heir names who may sign the key's next versions: it goes with --sign")
			}
			var opt dhtkit.SignOptions
			if sign {
				var err error
				if opt, err = g.signOptions(cmd.Context(), rk, ttl, heir); err != nil {
					return err
				}
			}
			var env []byte // the signature of a large signed value
			if sign || to != nil {
				sealed, e, err := seal(rk, body, sign, to, key, opt)
				if err != nil {
					return err
				}
				body, size, env = bytes.NewReader(sealed), int64(len(sealed)), e
			}
			if size > progressAfter && g.isTerminal(g.stderr) {
				p := newProgress(g.stderr, "put "+args[0], size)
				defer p.done()
				body = io.TeeReader(body, p)
			}
			path := withPutQuery(keyPath(rk), ttl, sign, extra)
			a := g.apiClient()
			if env != nil {
				a.header = http.Header{"X-Dhtkit-Envelope": {base64.StdEncoding.EncodeToString(env)}}
			}
			resp, err := a.doSized(cmd.Context(), http.MethodPut, path, body, "application/octet-stream", size)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return apiError(resp)
			}
			var out struct {
				Key     string     `json:"key"`
				Version string     `json:"version"`
				Expires *time.Time `json:"expires,omitempty"`
				ID      string     `json:"id,omitempty"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
				return fmt.Errorf("reading the node's answer: %w", err)
			}
			if asJSON {
				return json.NewEncoder(g.stdout).Encode(out)
			}
			fmt.Fprintln(g.stdout, out.Version)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&file, "file", "", "read the value from this file")
	f.DurationVar(&ttl, "ttl", 0, "how long the value lives (default 24h)")
	f.BoolVar(&sign, "sign", false, "sign the value with your identity (see: dhtkit key)")
	f.StringVar(&encryptTo, "encrypt-to", "", "encrypt the value to this public key (the \"encrypt\" key that dhtkit key prints)")
	f.StringVar(&key, "key", "", "identity file (default $DHTKIT_KEY, else in your configuration directory)")
	f.BoolVar(&asJSON, "json", false, `print {"key","version","expires"} as JSON`)
	f.StringVar(&heir, "heir", "", "with --sign: the \"sign\" key that may sign the key's next versions (rotating your signing key)")
	f.StringVar(&idFlag, "id", "", `which of the key's values to add or replace: 1 to 16 hex digits, or "random" (default: the key's default value)`)
	addPutFlags(cmd, &extra)
	return cmd
}

// keyArgs checks a data command's arguments: between min and max of them,
// the first a KEY that is not empty.
func keyArgs(min, max int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < min || len(args) > max {
			return usageError("%s wants %s (%s)", cmd.Name(), names, helpHint(cmd))
		}
		if len(args) > 0 && args[0] == "" {
			return usageError("KEY must not be empty (%s)", helpHint(cmd))
		}
		return nil
	}
}

// signOptions picks the version an owner signs a write of key with: newer
// than the key's current one, which the node at --api reports.
func (g *globals) signOptions(ctx context.Context, key string, ttl time.Duration, heir string) (dhtkit.SignOptions, error) {
	opt := dhtkit.SignOptions{TTL: ttl}
	if heir != "" {
		b, err := hex.DecodeString(heir)
		if err != nil || len(b) != ed25519.PublicKeySize {
			return opt, usageError("--heir: want the 64-hex-digit \"sign\" key that `dhtkit key` prints")
		}
		opt.Heir = b
	}
	cur, err := g.apiClient().currentVersion(ctx, key)
	if err != nil {
		return opt, err
	}
	opt.Version = cur // seal makes it the signer's next version
	return opt, nil
}

// currentVersion is the version of key's value, zero when it has none.
func (a *api) currentVersion(ctx context.Context, key string) (store.Version, error) {
	resp, err := a.do(ctx, http.MethodHead, keyPath(key), nil, "")
	if err != nil {
		return store.Version{}, err
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return store.Version{}, nil
	}
	v, err := store.ParseVersion(resp.Header.Get("X-Dhtkit-Version"))
	if err != nil {
		return store.Version{}, fmt.Errorf("reading the node's answer: %w", err)
	}
	return v, nil
}

// seal reads a value and encrypts and/or signs it, end to end. opt.Version
// is the key's current version; the signed one is the signer's next. A
// signed value that does not fit one record comes back as the value to
// store and env, the signature of its chunks (dhtkit.SignValue).
func seal(key string, r io.Reader, sign bool, to *[32]byte, keyPath string, opt dhtkit.SignOptions) (sealed, env []byte, err error) {
	v, err := io.ReadAll(io.LimitReader(r, maxSealed+1))
	if err != nil {
		return nil, nil, fmt.Errorf("reading the value: %w", err)
	}
	if len(v) > maxSealed {
		return nil, nil, usageError("--sign and --encrypt-to seal values in memory, up to %d MiB", maxSealed>>20)
	}
	if to != nil {
		if v, err = dhtkit.SealWith(key, v, nil, to, opt); err != nil {
			return nil, nil, err
		}
	}
	if !sign {
		return v, nil, nil
	}
	id, err := loadIdentity(keyFile(keyPath), true)
	if err != nil {
		return nil, nil, err
	}
	opt.Version = owner.NextVersion(id.SignPublic(), time.Now(), opt.Version)
	inline, env, err := dhtkit.SignValue(key, v, id.Sign, opt)
	if err != nil {
		return nil, nil, err
	}
	if env != nil {
		return v, env, nil
	}
	return inline, nil, nil
}

// open unwraps a signed or encrypted value read from the DHT, saying who
// signed it on stderr; with signer set, it fails unless signer signed it.
func (g *globals) open(key string, v []byte, keyPath string, signer ed25519.PublicKey) ([]byte, error) {
	var priv *[32]byte
	inner := v
	if e, err := owner.Parse(v); err == nil {
		inner = e.Payload
	}
	if bytes.HasPrefix(inner, []byte("DKE\x01")) {
		id, err := loadIdentity(keyFile(keyPath), false)
		if err != nil {
			return nil, fmt.Errorf("%q is encrypted: %w", key, err)
		}
		priv = &id.Decrypt
	}
	o, err := dhtkit.Open(key, v, priv)
	if err != nil {
		return nil, err
	}
	if signer != nil {
		if err := dhtkit.CheckSigner(key, o.Signer, signer); err != nil {
			return nil, err
		}
	}
	if o.Signer != nil {
		fmt.Fprintf(g.stderr, "dhtkit: signed by %x (verified)\n", []byte(o.Signer))
	}
	return o.Payload, nil
}

func newGetCmd(g *globals) *cobra.Command {
	var (
		out, key, signerHex string
		asJSON, partialOK   bool
		idFlag              string
	)
	cmd := &cobra.Command{
		Use:   "get KEY",
		Short: "Print a value (exit status 3 if the key has none)",
		Long: `get prints KEY's value. A key holds many values: get prints every live
one, newest first, each ended by a newline (--json: one JSON object per
line, with its "id" and "signer"); a key with one value prints it as it
is. --id ID prints only that value.`,
		Args: keyArgs(1, 1, "one KEY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if asJSON && out != "" {
				return usageError("give --json or --out, not both (%s)", helpHint(cmd))
			}
			var signer ed25519.PublicKey
			if signerHex != "" {
				b, err := hex.DecodeString(signerHex)
				if err != nil || len(b) != ed25519.PublicKeySize {
					return usageError("--signer: want the 64-hex-digit \"sign\" key that `dhtkit key` prints")
				}
				signer = b
			}
			vid, err := parseIDFlag(idFlag, false)
			if err != nil {
				return err
			}
			rk := store.ValueKey(args[0], vid) // what a signature covers
			if idFlag == "" {
				// Every value: one is printed as single-value use always
				// had it, several as a list.
				vals, err := g.apiClient().values(cmd.Context(), args[0], false, partialOK)
				if err != nil {
					return err
				}
				switch {
				case len(vals) == 0:
					return notFound("%q has no value", args[0])
				case len(vals) > 1 && out != "":
					return usageError("%q holds %d values: pick one with --id (%s)", args[0], len(vals), helpHint(cmd))
				case len(vals) > 1:
					return g.printValues(cmd.Context(), args[0], key, signer, asJSON, partialOK)
				}
				rk = vals[0].recordKey()
			}
			path := keyPath(rk)
			if signer != nil {
				path = withQuery(path, "signer", signerHex)
			}
			if partialOK {
				path = withQuery(path, "partial", "true")
			}
			resp, err := g.apiClient().do(cmd.Context(), http.MethodGet, path, nil, "")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode == http.StatusNotFound {
				return notFound("%q has no value", args[0])
			}
			partial := resp.Header.Get("X-Dhtkit-Partial") == "true"
			// A signed or encrypted value is opened before anything is
			// written, --out created included. With --signer the value is
			// checked here too: the node is not trusted to have done it.
			br := bufio.NewReaderSize(resp.Body, 4)
			var body io.Reader = br
			if h := resp.Header.Get("X-Dhtkit-Envelope"); h != "" {
				// A large signed value: checked whole against the
				// signature of its chunks before anything is written.
				env, err := base64.StdEncoding.DecodeString(h)
				if err != nil {
					return fmt.Errorf("get %q: the node sent a malformed signature", args[0])
				}
				value, err := io.ReadAll(io.LimitReader(br, maxSealed+1024))
				if err != nil {
					return fmt.Errorf("get %q: the transfer broke off: %w", args[0], err)
				}
				plain, err := g.openChunked(rk, value, env, key, signer)
				if err != nil {
					return err
				}
				body = bytes.NewReader(plain)
			} else if head, _ := br.Peek(4); signer != nil || isEnvelope(head) {
				sealed, err := io.ReadAll(io.LimitReader(br, maxSealed+1024))
				if err != nil {
					return fmt.Errorf("get %q: the transfer broke off: %w", args[0], err)
				}
				plain, err := g.open(rk, sealed, key, signer)
				if err != nil {
					return err
				}
				body = bytes.NewReader(plain)
			}
			stdout, flush := terminalSafe(g.stdout) // a value must not drive the terminal
			tail := &tailWriter{w: stdout}
			var w io.Writer = tail
			var buf bytes.Buffer
			var part *partFile
			switch {
			case asJSON:
				w = &buf
			case out != "":
				// The value goes to a file beside --out, renamed into place
				// once whole: an interrupted or failed get leaves no
				// partial --out behind.
				if part, err = createPart(out); err != nil {
					return err
				}
				defer part.abort()
				w = part
			}
			if out != "" && g.isTerminal(g.stderr) && (resp.ContentLength < 0 || resp.ContentLength > progressAfter) {
				p := newProgress(g.stderr, "get "+args[0], resp.ContentLength)
				defer p.done()
				w = io.MultiWriter(w, p)
			}
			if asJSON {
				body = io.LimitReader(body, maxJSONValue+1)
			}
			n, err := io.Copy(w, body)
			if err != nil {
				return fmt.Errorf("get %q: the transfer broke off: %w", args[0], err)
			}
			if err := cmd.Context().Err(); err != nil {
				return err
			}
			if err := flush(); err != nil {
				return err
			}
			if partial {
				fmt.Fprintln(g.stderr, "dhtkit: warning: fewer replicas than the read quorum answered; this may not be the newest value")
			}
			switch {
			case part != nil:
				return part.commit()
			case asJSON:
				if n > maxJSONValue {
					return fmt.Errorf("get %q: the value is larger than the %d MiB --json prints; use --out", args[0], maxJSONValue>>20)
				}
				_, id := store.SplitKey(rk)
				v := getJSON{Key: args[0], Version: resp.Header.Get("X-Dhtkit-Version"), Size: n, Value: buf.Bytes(), Partial: partial, ID: id.String(), Signer: resp.Header.Get("X-Dhtkit-Signer")}
				if v.Version == "" {
					v.Version = resp.Trailer.Get("X-Dhtkit-Version")
				}
				if utf8.Valid(v.Value) {
					t := string(v.Value)
					v.Text = &t
				}
				return json.NewEncoder(g.stdout).Encode(v)
			case n > 0 && tail.last != '\n' && g.isTerminal(g.stdout):
				fmt.Fprintln(g.stdout) // on a terminal, the prompt gets a line of its own
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "write the value to this file instead of standard output")
	cmd.Flags().StringVar(&key, "key", "", "identity file, to read values encrypted to you")
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"key","version","size","value" (base64),"text" (when UTF-8),"partial"} as JSON`)
	cmd.Flags().StringVar(&signerHex, "signer", "", "fail unless this \"sign\" key (see: dhtkit key) signed the value (of several values: print those it signed)")
	cmd.Flags().BoolVar(&partialOK, "partial", false, "when fewer replicas than the read quorum answer, print their best answer (marked partial) instead of failing")
	cmd.Flags().StringVar(&idFlag, "id", "", "print only the value with this id (1 to 16 hex digits)")
	return cmd
}

// maxJSONValue is the largest value get --json prints (it is held in memory).
const maxJSONValue = 16 << 20

// getJSON is what get --json prints.
type getJSON struct {
	Key     string  `json:"key"`
	Version string  `json:"version"`
	Size    int64   `json:"size"`
	Value   []byte  `json:"value"`
	Text    *string `json:"text,omitempty"`
	Partial bool    `json:"partial,omitempty"`
	ID      string  `json:"id,omitempty"`     // the value's id among the key's values
	Signer  string  `json:"signer,omitempty"` // who signed it (hex), checked
}

// tailWriter remembers the last byte written through it.
type tailWriter struct {
	w    io.Writer
	last byte
}

func (t *tailWriter) Write(p []byte) (int, error) {
	if len(p) > 0 {
		t.last = p[len(p)-1]
	}
	return t.w.Write(p)
}

// partFile is a file written beside its destination and renamed into
// place by commit; abort, after commit a no-op, removes it.
type partFile struct {
	*os.File
	dst  string
	done bool
}

func createPart(dst string) (*partFile, error) {
	f, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".*.part")
	if err != nil {
		return nil, fmt.Errorf("--out: %w", err)
	}
	return &partFile{File: f, dst: dst}, nil
}

func (p *partFile) commit() error {
	if err := p.Close(); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	if err := os.Rename(p.Name(), p.dst); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	p.done = true
	return nil
}

func (p *partFile) abort() {
	if !p.done {
		p.Close()
		os.Remove(p.Name())
	}
}

// openChunked is open for a large signed value and its signature.
func (g *globals) openChunked(key string, value, env []byte, keyPath string, signer ed25519.PublicKey) ([]byte, error) {
	var priv *[32]byte
	if bytes.HasPrefix(value, []byte("DKE\x01")) {
		id, err := loadIdentity(keyFile(keyPath), false)
		if err != nil {
			return nil, fmt.Errorf("%q is encrypted: %w", key, err)
		}
		priv = &id.Decrypt
	}
	o, err := dhtkit.OpenChunked(key, value, env, priv)
	if err != nil {
		return nil, err
	}
	if signer != nil {
		if err := dhtkit.CheckSigner(key, o.Signer, signer); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(g.stderr, "dhtkit: signed by %x (verified)\n", []byte(o.Signer))
	return o.Payload, nil
}

// isEnvelope reports whether a value starting with head is signed or
// encrypted.
func isEnvelope(head []byte) bool {
	return owner.Is(head) || bytes.Equal(head, []byte("DKS\x01")) || bytes.Equal(head, []byte("DKE\x01"))
}

func newDelCmd(g *globals) *cobra.Command {
	var (
		sign   bool
		key    string
		asJSON bool
		idFlag string
	)
	cmd := &cobra.Command{
		Use:   "del KEY",
		Short: "Delete a key (a tombstone that beats every older write)",
		Long: `del deletes KEY: a tombstone that beats every older write. A key put with
--sign belongs to its signer: only del --sign with the owner's identity
deletes it.

A key holds many values: del deletes all of them (with --sign, yours
signed ones too; a value someone else signed stays, and del says so);
--id ID deletes that value only.`,
		Args: keyArgs(1, 1, "one KEY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			vid, err := parseIDFlag(idFlag, false)
			if err != nil {
				return err
			}
			if idFlag == "" {
				return g.deleteAll(cmd.Context(), args[0], sign, key, asJSON)
			}
			return g.deleteOne(cmd.Context(), store.ValueKey(args[0], vid), sign, key, asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"key","deleted"} as JSON (and "id" of a value, "values" deleted)`)
	cmd.Flags().StringVar(&idFlag, "id", "", "delete only the value with this id (1 to 16 hex digits)")
	cmd.Flags().BoolVar(&sign, "sign", false, "sign the delete with your identity: the only delete of a key you put with --sign")
	cmd.Flags().StringVar(&key, "key", "", "identity file (default $DHTKIT_KEY, else in your configuration directory)")
	return cmd
}

// deleteOne deletes the value of record key rk, with sign by the owner's
// signed delete.
func (g *globals) deleteOne(ctx context.Context, rk string, sign bool, idPath string, asJSON bool) error {
	var body io.Reader
	size := int64(-1)
	if sign {
		id, err := loadIdentity(keyFile(idPath), false)
		if err != nil {
			return err
		}
		cur, err := g.apiClient().currentVersion(ctx, rk)
		if err != nil {
			return err
		}
		tomb, err := dhtkit.SignDelete(rk, id.Sign, dhtkit.SignOptions{Version: owner.NextVersion(id.SignPublic(), time.Now(), cur)})
		if err != nil {
			return err
		}
		body, size = bytes.NewReader(tomb), int64(len(tomb))
	}
	ct := ""
	if body != nil {
		ct = "application/octet-stream"
	}
	resp, err := g.apiClient().doSized(ctx, http.MethodDelete, keyPath(rk), body, ct, size)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return apiError(resp)
	}
	if asJSON {
		var out struct {
			Key     string `json:"key"`
			Deleted bool   `json:"deleted"`
			ID      string `json:"id,omitempty"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			return fmt.Errorf("reading the node's answer: %w", err)
		}
		return json.NewEncoder(g.stdout).Encode(out)
	}
	return nil
}

func newWhereisCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "whereis KEY",
		Short: `Print the nodes that hold KEY: "HOST:PORT NODEID VERSION" per line`,
		Args:  keyArgs(1, 1, "one KEY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out struct {
				Nodes []struct {
					ID      string `json:"id"`
					Addr    string `json:"addr"`
					Version string `json:"version"`
					Has     bool   `json:"has"`
					Deleted bool   `json:"deleted"`
					Self    bool   `json:"self"`
				} `json:"nodes"`
			}
			if err := g.apiClient().getJSON(cmd.Context(), http.MethodGet, keyPath(args[0])+"/where", &out); err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(g.stdout).Encode(out)
			}
			held := 0
			for _, n := range out.Nodes {
				if !n.Has {
					continue
				}
				held++
				state := n.Version
				if n.Deleted {
					state += " deleted"
				}
				fmt.Fprintf(g.stdout, "%s %s %s\n", n.Addr, n.ID, state)
			}
			if held == 0 {
				return notFound("no replica holds %q", args[0])
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the replicas' answers as JSON")
	return cmd
}

func newStatusCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Print the status of the node at --api",
		Args:  args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var st map[string]any
			if err := g.apiClient().getJSON(cmd.Context(), http.MethodGet, "/v1/status", &st); err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(g.stdout).Encode(st)
			}
			r, _ := st["routing"].(map[string]any)
			s, _ := st["store"].(map[string]any)
			out, _ := terminalSafe(g.stdout) // the network name comes from the node
			fmt.Fprintf(out, "id        %v\nnetwork   %v\nlisten    %v\n", st["id"], st["network"], st["listen"])
			if ext, ok := st["external"]; ok {
				fmt.Fprintf(g.stdout, "external  %v\n", ext)
			}
			keys := fmt.Sprintf("%v (values and the chunks of large ones)", s["keys"])
			fmt.Fprintf(g.stdout, "uptime    %v\ncontacts  %v\nkeys      %s\nbytes     %s\n",
				time.Duration(toFloat(st["uptime_s"])*float64(time.Second)).Round(time.Second), r["nodes"], keys, byteCount(int64(toFloat(s["bytes"]))))
			if nk, ok := st["network_key"].(map[string]any); ok {
				// The ids of the keys (the sealing one first), never the keys.
				fmt.Fprintf(g.stdout, "net keys  %v (%v datagrams no key opened)\n", nk["ids"], nk["undecryptable"])
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	return cmd
}

// byteCount is n in bytes, and in KiB, MiB or GiB when that is shorter
// to read: "27224117 (26.0 MiB)".
func byteCount(n int64) string {
	const unit = 1 << 10
	if n < unit {
		return fmt.Sprintf("%d", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 2; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%d (%.1f %ciB)", n, float64(n)/float64(div), "KMG"[exp])
}

func toFloat(v any) float64 {
	f, _ := v.(float64)
	return f
}

func newListenCmd(g *globals) *cobra.Command {
	var (
		asJSON bool
		idFlag string
		key    string
	)
	cmd := &cobra.Command{
		Use:   "listen KEY",
		Short: "Print KEY's value each time it is written, until interrupted",
		Long: `listen prints a line each time a value of KEY is added, changed, deleted
or expires, until interrupted: "VERSION TEXT", "VERSION deleted" or
"VERSION expired"; between VERSION and the rest, "id=ID" names a value other
than the key's default one and "signer=HEX" the owner of a signed value
(checked, and opened as get opens it: --key reads values encrypted to you).
--json prints each event as the node sends it, with "id", "signer" and
"reason" (added, changed, deleted, expired). --id ID follows one value.`,
		Args: keyArgs(1, 1, "one KEY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			vid, err := parseIDFlag(idFlag, false)
			if err != nil {
				return err
			}
			path := "/v1/watch/" + url.PathEscape(args[0])
			if idFlag != "" {
				path = withQuery(path, "id", vid.String())
			}
			resp, err := g.apiClient().do(cmd.Context(), http.MethodGet, path, nil, "")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 64<<10), 16<<20)
			// Each line is escaped whole on a terminal; flush has nothing
			// left to write after a line's newline.
			out, _ := terminalSafe(g.stdout)
			for sc.Scan() {
				data, ok := strings.CutPrefix(sc.Text(), "data: ")
				if !ok {
					continue
				}
				var v struct {
					Version string  `json:"version"`
					Text    *string `json:"text"`
					Value   []byte  `json:"value"`
					Size    int     `json:"size"`
					Deleted bool    `json:"deleted"`
					ID      string  `json:"id"`
					Signer  string  `json:"signer"`
					Reason  string  `json:"reason"`
				}
				if json.Unmarshal([]byte(data), &v) != nil {
					continue
				}
				// Opened here as get opens it: the signature checked by
				// this process, an encrypted value decrypted with --key.
				text, size := v.Text, v.Size
				if !v.Deleted && isEnvelope(v.Value[:min(4, len(v.Value))]) {
					id, _ := store.ParseValueID(v.ID)
					payload, by, err := g.openValue(store.ValueKey(args[0], id), v.Value, key)
					if err != nil {
						fmt.Fprintf(g.stderr, "dhtkit: value %s version %s: %v\n", v.ID, v.Version, err)
						continue
					}
					v.Signer, text, size = "", nil, len(payload)
					if by != nil {
						v.Signer = hex.EncodeToString(by)
					}
					if utf8.Valid(payload) {
						t := string(payload)
						text = &t
					}
					if asJSON {
						var ev map[string]any
						if json.Unmarshal([]byte(data), &ev) == nil {
							ev["signer"], ev["value"], ev["size"] = v.Signer, payload, size
							if text != nil {
								ev["text"] = *text
							} else {
								delete(ev, "text")
							}
							if b, err := json.Marshal(ev); err == nil {
								data = string(b)
							}
						}
					}
				}
				if asJSON {
					fmt.Fprintln(out, data)
					continue
				}
				var tags strings.Builder
				if v.ID != "" && v.ID != store.DefaultValue.String() {
					fmt.Fprintf(&tags, " id=%s", v.ID)
				}
				if v.Signer != "" {
					fmt.Fprintf(&tags, " signer=%s", v.Signer)
				}
				switch {
				case v.Deleted && v.Reason == "expired":
					fmt.Fprintf(out, "%s%s expired\n", v.Version, tags.String())
				case v.Deleted:
					fmt.Fprintf(out, "%s%s deleted\n", v.Version, tags.String())
				case text != nil:
					fmt.Fprintf(out, "%s%s %s\n", v.Version, tags.String(), *text)
				default:
					fmt.Fprintf(out, "%s%s (%d bytes of binary data)\n", v.Version, tags.String(), size)
				}
			}
			if err := cmd.Context().Err(); err != nil {
				return err // interrupted: exit 130 or 143
			}
			if err := sc.Err(); err != nil {
				return fmt.Errorf("listen %q: the stream broke off: %w", args[0], err)
			}
			// The node ended the stream: it is shutting down.
			return fmt.Errorf("listen %q: the node at %s stopped (it ended the stream); run listen again against a running node", args[0], resp.Request.URL.Host)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, `print each event as a JSON line: {"key","id","version","reason","size","value","text","signer","expires","deleted"}`)
	cmd.Flags().StringVar(&idFlag, "id", "", "follow only the value with this id (1 to 16 hex digits)")
	cmd.Flags().StringVar(&key, "key", "", "identity file, to read values encrypted to you")
	return cmd
}

// isTerminal reports whether w is a terminal, where a progress bar and
// hints help.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressAfter is the smallest transfer that shows progress on a terminal.
const progressAfter = 1 << 20

// progress draws a one-line progress bar for a transfer; total < 0 when
// the size is not known (a large value streamed from its chunks): then it
// shows the bytes so far and the rate.
type progress struct {
	w     io.Writer
	label string
	total int64
	n     int64
	last  time.Time
	start time.Time
}

func newProgress(w io.Writer, label string, total int64) *progress {
	return &progress{w: w, label: label, total: total, start: time.Now()}
}

func (p *progress) Write(b []byte) (int, error) {
	p.n += int64(len(b))
	if time.Since(p.last) > 100*time.Millisecond || p.n == p.total {
		p.last = time.Now()
		p.draw()
	}
	return len(b), nil
}

func (p *progress) draw() {
	rate := float64(p.n) / max(time.Since(p.start).Seconds(), 1e-3) / (1 << 20)
	if p.total < 0 {
		fmt.Fprintf(p.w, "\r%s %.1f MiB %.1f MiB/s", p.label, float64(p.n)/(1<<20), rate)
		return
	}
	const width = 30
	frac := float64(p.n) / float64(max(p.total, 1))
	k := min(int(frac*width), width)
	fmt.Fprintf(p.w, "\r%s [%s%s] %3.0f%% %.1f MiB/s", p.label, strings.Repeat("=", k), strings.Repeat(" ", width-k), 100*frac, rate)
}

func (p *progress) done() {
	p.draw()
	fmt.Fprintln(p.w)
}

// termCheck is the isTerminal every command starts with; tests replace it.
var termCheck = isTerminal

// dataCommand hides, in cmd's --help, the global flags a data command
// does not use (they are shared with the protocol commands), so that its
// help lists only what changes what it does.
func dataCommand(cmd *cobra.Command) *cobra.Command {
	help := cmd.HelpFunc()
	cmd.SetHelpFunc(func(c *cobra.Command, args []string) {
		for _, name := range []string{"bootstrap", "network", "timeout"} {
			if f := c.InheritedFlags().Lookup(name); f != nil && !f.Hidden {
				f.Hidden = true
				defer func() { f.Hidden = false }()
			}
		}
		help(c, args)
	})
	return cmd
}
