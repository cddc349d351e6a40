package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/dhtkit/dhtkit"
	"github.com/dhtkit/dhtkit/httpapi"
	"github.com/dhtkit/dhtkit/internal/rawtcp"
)

// serveHTTP serves n's HTTP API and web page on addr until ctx ends, and
// returns the page's URL once the port is bound (addr may end in ":0").
// Requests in flight, event streams included, are ended when ctx ends:
// their contexts derive from it.
func serveHTTP(ctx context.Context, addr string, n *dhtkit.Node, opts httpapi.Options, log *slog.Logger) (url string, err error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return "", fmt.Errorf("http: listening on %s: %w", addr, err)
	}
	if opts.Logger == nil {
		opts.Logger = log
	}
	srv := &http.Server{
		Handler:           httpapi.New(n, opts),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	go func() {
		// Raw reads and writes: see package rawtcp.
		if err := srv.Serve(rawtcp.Listener(ln)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server stopped", "addr", ln.Addr(), "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			srv.Close()
		}
	}()
	return "http://" + ln.Addr().String() + "/", nil
}
