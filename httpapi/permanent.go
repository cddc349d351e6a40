package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/dhtkit/dhtkit"
	"github.com/dhtkit/dhtkit/store"
)

// Options of a put beyond its TTL, and permanent puts over HTTP.
// PUT /v1/keys/{key}?if-version=V or ?if-absent=true is a conditional
// write (409 with the current version when the condition fails);
// ?permanent=true makes a put permanent (the node keeps it alive, dhtkit.PutOptions.Permanent);
// GET /v1/permanent lists what this node keeps alive; DELETE
// /v1/permanent/{key} cancels one (the value then expires within its TTL),
// as DELETE /v1/keys/{key} through this node does before it deletes.

func (s *server) permanentRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/permanent", s.listPermanent)
	mux.HandleFunc("DELETE /v1/permanent/{key}", s.cancelPermanent)
}

// putOptions reads the query parameters of a PUT that are options of the
// put besides ttl: permanent, and the conditions if-version (32 hex
// digits, as versions print) and if-absent.
func putOptions(q url.Values, opt *dhtkit.PutOptions) error {
	for name, dst := range map[string]*bool{"permanent": &opt.Permanent, "if-absent": &opt.IfAbsent} {
		if p := q.Get(name); p != "" {
			b, err := strconv.ParseBool(p)
			if err != nil {
				return fmt.Errorf("%s=%q: want true or false: %w", name, p, store.ErrInvalid)
			}
			*dst = b
		}
	}
	if v := q.Get("if-version"); v != "" {
		ver, err := store.ParseVersion(v)
		if err != nil || ver.IsZero() {
			return fmt.Errorf("if-version=%q: want a version as put prints it (32 hex digits): %w", v, store.ErrInvalid)
		}
		opt.IfVersion = ver
	}
	return nil
}

type permanentJSON struct {
	Key     string        `json:"key"`
	ID      string        `json:"id,omitempty"` // a value's id; absent for the key's default value
	TTL     string        `json:"ttl"`
	Size    int           `json:"size"`
	Version store.Version `json:"version"`
	Written *time.Time    `json:"written,omitempty"`
}

func (s *server) listPermanent(w http.ResponseWriter, r *http.Request) {
	out := []permanentJSON{}
	for _, p := range s.n.Permanent() {
		key, vid := store.SplitKey(p.Key)
		j := permanentJSON{Key: key, TTL: p.TTL.String(), Size: p.Size, Version: p.Version}
		if vid != store.DefaultValue {
			j.ID = vid.String()
		}
		if !p.Written.IsZero() {
			t := p.Written.UTC().Truncate(time.Second)
			j.Written = &t
		}
		out = append(out, j)
	}
	writeJSON(w, http.StatusOK, out)
}

type cancelJSON struct {
	Key       string `json:"key"`
	Cancelled bool   `json:"cancelled"`
}

func (s *server) cancelPermanent(w http.ResponseWriter, r *http.Request) {
	key, err := pathKey(r)
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, err)
		return
	}
	if err := s.n.CancelPermanent(key); err != nil {
		code := 0
		if errors.Is(err, dhtkit.ErrNotPermanent) {
			code = http.StatusNotFound
		}
		s.fail(w, r, code, err)
		return
	}
	writeJSON(w, http.StatusOK, cancelJSON{Key: key, Cancelled: true})
}
