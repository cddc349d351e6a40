package rawtcp

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"testing"
	"time"
)

// pair returns a connection accepted through Listener and the client end.
func pair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := Listener(inner)
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

func TestRawOnLinux(t *testing.T) {
	server, _ := pair(t)
	_, raw := server.(*conn)
	if raw != (runtime.GOOS == "linux") {
		t.Fatalf("accepted a %T on %s", server, runtime.GOOS)
	}
}

// TestEcho: 16 MiB each way at once, more than the socket buffers hold,
// so that writes meet EAGAIN and partial writes, and reads short ones.
func TestEcho(t *testing.T) {
	server, client := pair(t)
	data := make([]byte, 16<<20)
	rand.Read(data)
	go func() { io.Copy(server, server) }() // echo through the raw conn
	errc := make(chan error, 1)
	go func() {
		_, err := client.Write(data)
		errc <- err
	}()
	got := make([]byte, len(data))
	if _, err := io.ReadFull(client, got); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("echoed bytes differ from those sent")
	}
}

func TestEOF(t *testing.T) {
	server, client := pair(t)
	client.Write([]byte("last words"))
	client.Close()
	got, err := io.ReadAll(server)
	if err != nil || string(got) != "last words" {
		t.Fatalf("ReadAll = %q, %v; want the bytes sent, then EOF", got, err)
	}
	if n, err := server.Read(make([]byte, 8)); n != 0 || err != io.EOF {
		t.Fatalf("Read after EOF = %d, %v", n, err)
	}
}

func TestDeadline(t *testing.T) {
	server, _ := pair(t)
	server.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := server.Read(make([]byte, 8))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Read past its deadline: %v, want a timeout", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "read" || errors.As(oe.Err, new(*net.OpError)) {
		t.Fatalf("Read past its deadline: %#v, want one OpError for a read", err)
	}
}

func TestCloseWakesRead(t *testing.T) {
	server, _ := pair(t)
	errc := make(chan error, 1)
	go func() {
		_, err := server.Read(make([]byte, 8))
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond) // the read may or may not be waiting yet: either way it must end
	server.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read on a closed conn: %v, want net.ErrClosed", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Close did not end a waiting Read")
	}
}

func TestWriteToReset(t *testing.T) {
	server, client := pair(t)
	client.(*net.TCPConn).SetLinger(0)
	client.Close() // a reset
	var err error
	deadline := time.Now().Add(time.Minute)
	for err == nil && time.Now().Before(deadline) {
		_, err = server.Write(make([]byte, 64<<10))
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "write" {
		t.Fatalf("Write to a reset connection: %v, want a write OpError", err)
	}
}

func TestNoAllocs(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("raw only on Linux")
	}
	server, client := pair(t)
	buf := make([]byte, 512)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := client.Write(buf); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(server, buf); err != nil {
			t.Fatal(err)
		}
		if _, err := server.Write(buf); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(client, buf); err != nil {
			t.Fatal(err)
		}
	})
	// The client's side is Go's own, which allocates nothing either.
	if allocs != 0 {
		t.Fatalf("%v allocations per round trip, want 0", allocs)
	}
}

// TestHTTP: net/http over the listener: keep-alive requests, a 4 MiB
// body each way, and a handler that ends while the client still sends.
func TestHTTP(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 4<<20)
	rand.Read(big)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPut:
			b, err := io.ReadAll(r.Body)
			if err != nil || !bytes.Equal(b, big) {
				http.Error(w, "body differs", http.StatusBadRequest)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		default:
			w.Write(big)
		}
	})}
	go srv.Serve(Listener(inner))
	defer srv.Close()
	url := "http://" + inner.Addr().String() + "/"
	c := &http.Client{Timeout: time.Minute}
	for i := range 20 {
		req, _ := http.NewRequest(http.MethodPut, url, bytes.NewReader(big))
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusNoContent {
			t.Fatalf("put %d: %s", i, res.Status)
		}
		res, err = c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil || !bytes.Equal(b, big) {
			t.Fatalf("get %d: %d bytes, %v", i, len(b), err)
		}
	}
}
