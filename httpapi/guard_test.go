package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestGuard runs the API's guard on requests of every kind, without a
// network: Host allowlist, token, cross-site refusal, simple content
// types.
func TestGuard(t *testing.T) {
	s := &server{opt: Options{Token: "s3cret", AllowedHosts: []string{"dht.example.org"}}, log: quiet}
	s.metrics = newMetrics(s)
	h := s.guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	auth := map[string]string{"Authorization": "Bearer s3cret"}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{"Authorization": "Bearer s3cret"}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	for _, tc := range []struct {
		name, method, target, host string
		headers                    map[string]string
		want                       int
	}{
		{"IPv4 literal", "GET", "/v1/status", "127.0.0.1:6880", auth, 204},
		{"IPv6 literal", "GET", "/v1/status", "[::1]:6880", auth, 204},
		{"public IP literal", "GET", "/v1/status", "203.0.113.7:6880", auth, 204},
		{"localhost", "GET", "/v1/status", "localhost:6880", auth, 204},
		{"a .localhost name", "GET", "/v1/status", "node1.localhost", auth, 204},
		{"an allowed name", "GET", "/v1/status", "DHT.example.org:443", auth, 204},
		{"a rebound name", "GET", "/v1/status", "evil.example:6880", auth, 421},
		{"a rebound name, writing", "PUT", "/v1/keys/k", "evil.example:6880", auth, 421},
		{"no token", "GET", "/v1/status", "127.0.0.1", nil, 401},
		{"a wrong token", "GET", "/metrics", "127.0.0.1", map[string]string{"Authorization": "Bearer nope"}, 401},
		{"the token in a cookie", "GET", "/", "127.0.0.1", map[string]string{"Cookie": tokenCookie + "=s3cret"}, 204},
		{"?token= sets the cookie", "GET", "/?token=s3cret&x=1", "127.0.0.1", nil, 303},
		{"?token= does not write", "PUT", "/v1/keys/k?token=s3cret", "127.0.0.1", nil, 401},
		{"curl PUT", "PUT", "/v1/keys/k", "127.0.0.1", with(map[string]string{"Content-Type": "application/x-www-form-urlencoded"}), 204},
		{"same-origin fetch", "PUT", "/v1/keys/k", "127.0.0.1", with(map[string]string{"Sec-Fetch-Site": "same-origin"}), 204},
		{"cross-site fetch", "POST", "/v1/lookup/x", "127.0.0.1", with(map[string]string{"Sec-Fetch-Site": "cross-site"}), 403},
		{"same-site fetch (another port)", "DELETE", "/v1/keys/k", "127.0.0.1", with(map[string]string{"Sec-Fetch-Site": "same-site"}), 403},
		{"cross-site Origin", "POST", "/ui/put", "127.0.0.1:6880", with(map[string]string{"Origin": "http://evil.example"}), 403},
		{"Origin null", "POST", "/ui/put", "127.0.0.1:6880", with(map[string]string{"Origin": "null"}), 403},
		{"same Origin", "POST", "/ui/put", "127.0.0.1:6880", with(map[string]string{"Origin": "http://127.0.0.1:6880", "Content-Type": "application/x-www-form-urlencoded"}), 204},
		{"a cross-site GET reads nothing it may not", "GET", "/v1/status", "127.0.0.1", with(map[string]string{"Sec-Fetch-Site": "cross-site"}), 204},
		{"text/plain JSON", "POST", "/v1/items", "127.0.0.1", with(map[string]string{"Content-Type": "text/plain;charset=UTF-8"}), 415},
		{"form-encoded JSON", "PUT", "/v1/items/x", "127.0.0.1", with(map[string]string{"Content-Type": "application/x-www-form-urlencoded"}), 415},
		{"multipart JSON", "POST", "/v1/items", "127.0.0.1", with(map[string]string{"Content-Type": "multipart/form-data; boundary=x"}), 415},
		{"application/json", "POST", "/v1/items", "127.0.0.1", with(map[string]string{"Content-Type": "application/json"}), 204},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.target, strings.NewReader("{}"))
			r.Host = tc.host
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.want {
				t.Fatalf("%s %s (Host %s): %d %s, want %d", tc.method, tc.target, tc.host, w.Code, w.Body, tc.want)
			}
			if w.Code == 303 {
				c := w.Result().Cookies()
				if len(c) != 1 || c[0].Value != "s3cret" || !c[0].HttpOnly || c[0].SameSite != http.SameSiteStrictMode {
					t.Fatalf("cookie %+v", c)
				}
				if loc := w.Header().Get("Location"); strings.Contains(loc, "token") || loc != "/?x=1" {
					t.Fatalf("redirect to %q", loc)
				}
			}
		})
	}
}
