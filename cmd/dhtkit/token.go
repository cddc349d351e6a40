package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"strings"
)

// The HTTP API's bearer token: `dhtkit node --http-token FILE` serves
// only requests that carry it; data commands send it from --token FILE or
// $DHTKIT_TOKEN (the token itself).

// httpGuard decides how the node's HTTP API on addr is protected and
// returns its token ("" for none). Off loopback it needs a token, unless
// the operator says --http-insecure, which the log then says plainly.
func httpGuard(g *globals, addr, tokenFile string, insecure bool) (string, error) {
	if tokenFile != "" {
		return loadToken(tokenFile, true)
	}
	if loopbackAddr(addr) {
		return "", nil
	}
	if !insecure {
		return "", usageError("refusing to serve the HTTP API on %s without a token: anyone who reaches it could read and change every value; "+
			"give --http-token FILE (made when absent), keep it on 127.0.0.1, or say --http-insecure", addr)
	}
	g.log.Warn("the HTTP API listens off loopback without a token (--http-insecure): anyone who can reach " + addr + " can read, write and delete this node's data")
	return "", nil
}

// loopbackAddr reports whether the listen address addr (host:port) only
// accepts connections from this machine.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// loadToken reads the token in path; create makes a random one there
// (mode 0600) when the file does not exist. A file that others can read
// is refused: the token is a password.
func loadToken(path string, create bool) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && create {
		var raw [32]byte
		if _, err := rand.Read(raw[:]); err != nil {
			return "", err
		}
		tok := hex.EncodeToString(raw[:])
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return "", fmt.Errorf("--http-token: making %s: %w", path, err)
		}
		_, err = f.WriteString(tok + "\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return "", fmt.Errorf("--http-token: writing %s: %w", path, err)
		}
		return tok, nil
	}
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o077 != 0 {
		return "", usageError("token file %s can be read by others (mode %v): chmod 600 %s", path, st.Mode().Perm(), path)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" || strings.ContainsAny(tok, " \t\r\n") {
		return "", usageError("token file %s: want one line, the token", path)
	}
	return tok, nil
}

// apiToken is the token data commands send: --token FILE, else
// $DHTKIT_TOKEN.
func (g *globals) apiToken() (string, error) {
	if g.tokenFile != "" {
		return loadToken(g.tokenFile, false)
	}
	return strings.TrimSpace(os.Getenv("DHTKIT_TOKEN")), nil
}
