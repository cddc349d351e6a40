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
)

// api talks to a running node's HTTP API (--api, $DHTKIT_API).
type api struct {
	base   string
	hc     *http.Client
	token  string
	err    error       // reading the token failed: every request reports it
	header http.Header // sent with every request
}

func (g *globals) apiClient() *api {
	// One command makes a request or two: no connection is worth keeping.
	tr := &http.Transport{Proxy: http.ProxyFromEnvironment, DisableKeepAlives: true}
	a := &api{base: strings.TrimRight(g.api, "/"), hc: &http.Client{Transport: tr}}
	a.token, a.err = g.apiToken()
	return a
}

// keyPath is the API path of key, escaped so that any key round-trips.
func keyPath(key string) string { return "/v1/keys/" + url.PathEscape(key) }

// do sends a request and returns the response when its status is 2xx (or
// 404, which callers turn into "not found"); otherwise an error that
// carries the API's own message.
func (a *api) do(ctx context.Context, method, path string, body io.Reader, contentType string) (*http.Response, error) {
	return a.doSized(ctx, method, path, body, contentType, -1)
}

// doSized is do with the body's length known (-1: unknown), so that the
// node can refuse a value over its limit before it is sent.
func (a *api) doSized(ctx context.Context, method, path string, body io.Reader, contentType string, size int64) (*http.Response, error) {
	if a.err != nil {
		return nil, a.err
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, body)
	if err != nil {
		return nil, usageError("--api %q: %v", a.base, err)
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
			return nil, fmt.Errorf("no dhtkit node answers at %s: start one with `dhtkit node`, or point --api (or DHTKIT_API) at one", a.base)
		}
		return nil, fmt.Errorf("%s %s: %w", method, a.base+path, err)
	}
	if resp.StatusCode/100 == 2 || resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusNotModified {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, apiError(resp)
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
