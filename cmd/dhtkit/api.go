package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/dhtkit/dhtkit/store"
)

// api talks to a running node's HTTP API (--api, $DHTKIT_API): one
// endpoint, or several separated by commas, tried in order (failover).
type api struct {
	bases  []string // "http://HOST:PORT", without a trailing slash
	chose  string   // the endpoint that answered, once one has
	hc     *http.Client
	token  string
	err    error       // reading the token failed: every request reports it
	header http.Header // sent with every request
}

func (g *globals) apiClient() *api {
	// One command makes a request or two: no connection is worth keeping.
	tr := &http.Transport{Proxy: http.ProxyFromEnvironment, DisableKeepAlives: true}
	a := &api{bases: parseAPI(g.api), hc: &http.Client{Transport: tr}}
	a.token, a.err = g.apiToken()
	return a
}

// parseAPI splits --api into endpoints, each a URL or a HOST:PORT (which
// means http://HOST:PORT).
func parseAPI(s string) []string {
	var out []string
	for _, b := range strings.Split(s, ",") {
		b = strings.TrimRight(strings.TrimSpace(b), "/")
		if b == "" {
			continue
		}
		if !strings.Contains(b, "://") {
			b = "http://" + b
		}
		out = append(out, b)
	}
	return out
}

// checkAPI validates --api: a usage error names the bad endpoint.
func checkAPI(s string) error {
	bases := parseAPI(s)
	if len(bases) == 0 {
		return usageError("--api is empty: want a URL or HOST:PORT of a node's HTTP API, or several separated by commas")
	}
	for _, b := range bases {
		u, err := url.Parse(b)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return usageError("--api %q: want a URL such as http://127.0.0.1:6880 or a HOST:PORT such as 127.0.0.1:6880", b)
		}
	}
	return nil
}

// keyPath is the API path of key, escaped so that any key round-trips; a
// value's record key (store.ValueKey) becomes its key's path with ?id=.
func keyPath(key string) string {
	k, id := store.SplitKey(key)
	if id == store.DefaultValue {
		return "/v1/keys/" + url.PathEscape(key)
	}
	return "/v1/keys/" + url.PathEscape(k) + "?id=" + id.String()
}

// withQuery adds name=value to path's query.
func withQuery(path, name, value string) string {
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	return path + sep + name + "=" + url.QueryEscape(value)
}

// do sends a request and returns the response when its status is 2xx (or
// 404, which callers turn into "not found"); otherwise an error that
// carries the API's own message.
func (a *api) do(ctx context.Context, method, path string, body io.Reader, contentType string) (*http.Response, error) {
	return a.doSized(ctx, method, path, body, contentType, -1)
}

// doSized is do with the body's length known (-1: unknown), so that the
// node can refuse a value over its limit before it is sent.
//
// With several endpoints, the first one that accepts a connection serves
// the command: an endpoint that refuses one is skipped before any byte of
// the body is read, so that even standard input can fail over.
func (a *api) doSized(ctx context.Context, method, path string, body io.Reader, contentType string, size int64) (*http.Response, error) {
	if a.err != nil {
		return nil, a.err
	}
	base, err := a.pick(ctx)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, body)
	if err != nil {
		return nil, usageError("--api %q: %v", base, err)
	}
	for k, vs := range a.header {
		req.Header[k] = vs
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	if size >= 0 {
		req.ContentLength = size
		if size == 0 {
			req.Body = http.NoBody
		}
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) || isDialError(err) {
			return nil, a.noNode()
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%s %s: %w", method, base+path, err)
	}
	if resp.StatusCode/100 == 2 || resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusNotModified {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, apiError(resp)
}

// pick returns the endpoint to use: the only one, else the first that
// accepts a TCP connection within a few seconds.
func (a *api) pick(ctx context.Context) (string, error) {
	if a.chose != "" {
		return a.chose, nil
	}
	if len(a.bases) == 1 {
		a.chose = a.bases[0]
		return a.chose, nil
	}
	for _, b := range a.bases {
		u, err := url.Parse(b)
		if err != nil {
			continue
		}
		host := u.Host
		if u.Port() == "" {
			host = net.JoinHostPort(u.Hostname(), map[string]string{"https": "443"}[u.Scheme]+map[string]string{"http": "80"}[u.Scheme])
		}
		dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		c, err := (&net.Dialer{}).DialContext(dctx, "tcp", host)
		cancel()
		if err == nil {
			c.Close()
			a.chose = b
			return b, nil
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
	}
	return "", a.noNode()
}

func (a *api) noNode() error {
	return fmt.Errorf("no dhtkit node answers at %s: start one with `dhtkit node`, or point --api (or DHTKIT_API) at one", strings.Join(a.bases, ", "))
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// apiError turns an error response ({"error": "..."}) into an error.
func apiError(resp *http.Response) error {
	var e struct {
		Error string `json:"error"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return fmt.Errorf("%s", e.Error)
	}
	return fmt.Errorf("the node answered %s", resp.Status)
}

// getJSON fetches path and decodes its JSON into v; a 404 is notFound.
func (a *api) getJSON(ctx context.Context, method, path string, v any) error {
	resp, err := a.do(ctx, method, path, nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return notFound("%s", apiError(resp))
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("reading the node's answer: %w", err)
	}
	return nil
}
