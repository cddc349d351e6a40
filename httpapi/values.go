package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/dhtkit/dhtkit"
)

// A key's many values (dhtkit.Values): GET /v1/values/{key} lists every
// live value, newest first (?data=0: without their data, none of a large
// value's chunks fetched), and DELETE /v1/values/{key} deletes all the
// node may (the unsigned ones). One value is read, written and deleted
// through /v1/keys/{key}?id=ID.

// maxValuesJSON bounds the value bytes one GET /v1/values answer carries;
// past it a value is listed without its data (Truncated).
const maxValuesJSON = 16 << 20

// valuesJSON is GET /v1/values/{key}.
type valuesJSON struct {
	Key     string      `json:"key"`
	Values  []valueJSON `json:"values"`
	Partial bool        `json:"partial,omitempty"`
}

func (s *server) valuesRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/values/{key}", s.getValues)
	mux.HandleFunc("DELETE /v1/values/{key}", s.deleteValues)
}

func (s *server) getValues(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	if key == "" {
		s.fail(w, r, http.StatusBadRequest, errors.New("empty key"))
		return
	}
	if r.URL.Query().Get("partial") == "true" {
		// As GET /v1/keys/{key}?partial=true: the best answer of fewer
		// replicas than the read quorum, marked "partial".
		r = r.WithContext(dhtkit.WithPartial(r.Context()))
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	start := time.Now()
	limit := int64(maxValuesJSON)
	stat := r.URL.Query().Get("data") == "0"
	if stat {
		limit = -1 // sizes, versions and signers only
	}
	vs, err := s.n.ValuesWithin(ctx, key, limit)
	s.metrics.observeOp("kv_get", time.Since(start), err)
	if err != nil {
		s.fail(w, r, 0, err)
		return
	}
	out := valuesJSON{Key: key, Values: make([]valueJSON, 0, len(vs))}
	for _, v := range vs {
		ev := newValueJSON(key, v)
		if v.Data == nil {
			ev.Size, ev.Text = int(v.Size), nil
			ev.Truncated = !stat && v.Size > 0
		}
		out.Partial = out.Partial || v.Partial
		out.Values = append(out.Values, ev)
	}
	w.Header().Set("Cache-Control", "no-cache")
	writeJSON(w, http.StatusOK, out)
}

func (s *server) deleteValues(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	if key == "" {
		s.fail(w, r, http.StatusBadRequest, errors.New("empty key"))
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	start := time.Now()
	n, err := s.n.DeleteAll(ctx, key)
	s.metrics.observeOp("kv_delete", time.Since(start), err)
	if err != nil {
		if errors.Is(err, dhtkit.ErrSignedValues) {
			s.fail(w, r, http.StatusConflict, fmt.Errorf("%w; deleted %d", err, n))
			return
		}
		s.fail(w, r, 0, err)
		return
	}
	writeJSON(w, http.StatusOK, deleteJSON{Key: key, Deleted: true, Values: &n})
}
