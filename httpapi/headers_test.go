package httpapi

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestSecurityHeaders checks every response carries the security headers,
// and that a handler changing one changes only its own response: the
// values are shared.
func TestSecurityHeaders(t *testing.T) {
	h := securityHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/framed" {
			w.Header().Add("X-Frame-Options", "SAMEORIGIN")
			w.Header().Set("Referrer-Policy", "no-referrer")
		}
	}))
	for _, path := range []string{"/", "/framed", "/"} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		want := map[string][]string{
			"X-Content-Type-Options": {"nosniff"},
			"X-Frame-Options":        {"DENY"},
			"Referrer-Policy":        {"same-origin"},
		}
		if path == "/framed" {
			want["X-Frame-Options"] = []string{"DENY", "SAMEORIGIN"}
			want["Referrer-Policy"] = []string{"no-referrer"}
		}
		for k, v := range want {
			if got := w.Result().Header.Values(k); len(got) != len(v) || got[0] != v[0] || got[len(got)-1] != v[len(v)-1] {
				t.Errorf("%s: %s is %q, want %q", path, k, got, v)
			}
		}
	}
}
