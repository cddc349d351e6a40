package httpapi

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// The API is guarded against the three ways a stranger reaches it:
//
//   - over the network: with Options.Token set, every request carries it
//     (Authorization: Bearer TOKEN; a browser opens the page once with
//     ?token=TOKEN and keeps it in a SameSite=Strict cookie, which no
//     other site's request carries);
//   - through the visitor's browser, by DNS rebinding: a page of
//     evil.example whose name later resolves to 127.0.0.1 reaches the node
//     as "same origin", but its requests say Host: evil.example. Only IP
//     literals (which cannot be rebound), localhost names and
//     Options.AllowedHosts are served (etcd's --host-whitelist,
//     Transmission's rpc-host-whitelist);
//   - through the visitor's browser, cross-site: a page elsewhere that
//     posts a form or fetches with a simple request. A request that changes
//     state is refused when the browser says it comes from another site
//     (Sec-Fetch-Site, else Origin), and the API's JSON endpoints refuse
//     the content types a form or a no-preflight fetch can send
//     (text/plain, application/x-www-form-urlencoded, multipart/form-data).
//     Clients that are not browsers (curl, the CLI) send neither header.

// tokenCookie keeps a browser's token after it opened the page with
// ?token=.
const tokenCookie = "dhtkit_token"

func (s *server) guard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.hostAllowed(r.Host) {
			s.fail(w, r, http.StatusMisdirectedRequest, fmt.Errorf("host %q is not served here (DNS rebinding protection): use an IP address or localhost, or start the node with --http-allow-host %s", r.Host, hostOnly(r.Host)))
			return
		}
		if s.opt.Token != "" && !s.authorized(w, r) {
			return
		}
		if changesState(r.Method) {
			if err := sameSite(r); err != nil {
				s.fail(w, r, http.StatusForbidden, err)
				return
			}
			if err := jsonContentType(r); err != nil {
				s.fail(w, r, http.StatusUnsupportedMediaType, err)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

func changesState(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// hostOnly is the host of a Host header, without port and brackets,
// lower case.
func hostOnly(hostport string) string {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	return strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
}

// hostAllowed reports whether a request for Host may be served: an IP
// literal (no DNS, so nothing to rebind), a localhost name, or a name the
// operator allowed.
func (s *server) hostAllowed(hostport string) bool {
	host := hostOnly(hostport)
	if host == "" {
		return true // no Host: HTTP/1.0, not a browser (browsers always send one)
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	for _, a := range s.opt.AllowedHosts {
		if strings.EqualFold(hostOnly(a), host) {
			return true
		}
	}
	return false
}

// authorized checks the request's token; on failure it answers 401. A
// GET with ?token= sets the cookie and redirects to the URL without it, so
// that the token does not stay in the address bar or in links.
func (s *server) authorized(w http.ResponseWriter, r *http.Request) bool {
	want := []byte(s.opt.Token)
	match := func(got string) bool { return got != "" && subtle.ConstantTimeCompare([]byte(got), want) == 1 }
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && match(strings.TrimSpace(tok)) {
		return true
	}
	if c, err := r.Cookie(tokenCookie); err == nil && match(c.Value) {
		return true
	}
	q := r.URL.Query()
	if r.Method == http.MethodGet && match(q.Get("token")) {
		http.SetCookie(w, &http.Cookie{Name: tokenCookie, Value: s.opt.Token, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
		q.Del("token")
		u := url.URL{Path: r.URL.Path, RawQuery: q.Encode()}
		http.Redirect(w, r, u.String(), http.StatusSeeOther)
		return false
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="dhtkit"`)
	s.fail(w, r, http.StatusUnauthorized, errors.New("this node's API needs its token: pass --token FILE or set DHTKIT_TOKEN (Authorization: Bearer TOKEN; a browser opens the page once with ?token=TOKEN)"))
	return false
}

// sameSite refuses a request that a browser says comes from another site.
func sameSite(r *http.Request) error {
	// Browsers since 2020 say where a request comes from.
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		if site == "same-origin" || site == "none" {
			return nil
		}
		return fmt.Errorf("cross-site request refused (Sec-Fetch-Site: %s)", site)
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return nil // not a browser, or a same-origin GET-like request of an old one
	}
	ou, err := url.Parse(o)
	if err != nil || ou.Host == "" || !strings.EqualFold(ou.Host, r.Host) {
		return fmt.Errorf("cross-site request refused (Origin: %s)", o)
	}
	return nil
}

// jsonContentType refuses, on the API's endpoints other than the raw
// bytes of /v1/keys/ (which only PUT and DELETE write: methods no page can
// send cross-site without a preflight this API never grants), the content
// types a cross-site form or a no-preflight fetch can carry. The web
// page's own forms (/ui/) post forms, and check their origin themselves.
func jsonContentType(r *http.Request) error {
	if !strings.HasPrefix(r.URL.Path, "/v1/") || strings.HasPrefix(r.URL.Path, "/v1/keys/") {
		return nil
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return fmt.Errorf("Content-Type %q does not parse: send application/json", ct)
	}
	switch mt {
	case "text/plain", "application/x-www-form-urlencoded", "multipart/form-data":
		return fmt.Errorf("Content-Type %s refused on %s (a form or a cross-site page could send it): send application/json", mt, r.URL.Path)
	}
	return nil
}
