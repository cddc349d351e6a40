package fault

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Target is a node's HTTP API as the client reaches it.
type Target struct {
	Name string
	API  string       // http://host:port
	HTTP *http.Client // nil: the Client's own
}

// Client makes key-value operations through nodes' HTTP APIs (the
// endpoints of docs/contract.md) and records each in History.
type Client struct {
	HTTP    *http.Client
	History *History
	// Timeout bounds each operation; a write that times out is
	// indeterminate.
	Timeout time.Duration
}

// NewClient returns a Client with a 10 s bound per operation.
func NewClient() *Client {
	return &Client{HTTP: &http.Client{}, History: &History{}, Timeout: 10 * time.Second}
}

// Do makes one operation through t and records it. value is what a
// write writes; final marks a read of the final state.
func (c *Client) Do(ctx context.Context, process int, t Target, kind Kind, key, value string, final bool) Op {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	op := Op{Process: process, Node: t.Name, Kind: kind, Key: key, Final: final, Start: time.Now()}
	if kind == Write {
		op.Value = value
	}
	err := c.do(ctx, t, &op)
	op.End = time.Now()
	if err != nil {
		op.OK = false
		op.Err = err.Error()
	}
	c.History.Add(op)
	return op
}

func (c *Client) do(ctx context.Context, t Target, op *Op) error {
	u := t.API + "/v1/keys/" + url.PathEscape(op.Key)
	var req *http.Request
	var err error
	switch op.Kind {
	case Write:
		req, err = http.NewRequestWithContext(ctx, http.MethodPut, u, strings.NewReader(op.Value))
	case Delete:
		req, err = http.NewRequestWithContext(ctx, http.MethodDelete, u, nil)
	default:
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	}
	if err != nil {
		return err
	}
	hc := t.HTTP
	if hc == nil {
		hc = c.HTTP
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	switch {
	case op.Kind == Read && resp.StatusCode == http.StatusNotFound:
		op.OK = true
		return nil
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(body))
	}
	switch op.Kind {
	case Write:
		var out struct {
			Version string `json:"version"`
		}
		if err := json.Unmarshal(body, &out); err != nil || out.Version == "" {
			return fmt.Errorf("a write answered 200 without a version: %.200q", body)
		}
		op.Version = out.Version
	case Read:
		op.Found = true
		op.Value = string(body)
		op.Version = resp.Header.Get("X-Dhtkit-Version")
		op.Partial = resp.Header.Get("X-Dhtkit-Partial") == "true"
	}
	op.OK = true
	return nil
}

// Workload chooses each process's next operation.
type Workload interface {
	// Next returns the next operation of process p (seq counts its
	// operations); value is unique in the run.
	Next(p, seq int, rnd *rand.Rand) (kind Kind, key, value string)
}

// Register is Jepsen's register workload over a few keys: reads, writes
// and deletes at random, each write a value of its own.
type Register struct {
	Keys []string
	// Reads and Deletes are the fractions of operations that read and
	// delete; the rest write.
	Reads, Deletes float64
}

// Next implements Workload.
func (w Register) Next(p, seq int, rnd *rand.Rand) (Kind, string, string) {
	key := w.Keys[rnd.IntN(len(w.Keys))]
	switch x := rnd.Float64(); {
	case x < w.Reads:
		return Read, key, ""
	case x < w.Reads+w.Deletes:
		return Delete, key, ""
	}
	return Write, key, fmt.Sprintf("p%d-%d", p, seq)
}

// Set is Jepsen's set workload: each operation writes a key of its own,
// once.
type Set struct{ Prefix string }

// Next implements Workload.
func (w Set) Next(p, seq int, _ *rand.Rand) (Kind, string, string) {
	k := fmt.Sprintf("%sp%d-%d", w.Prefix, p, seq)
	return Write, k, "v-" + k
}

// Run runs processes clients until ctx ends, process p making its
// operations through target(p) (so that every side of a partition
// gets clients), each waiting pace between two operations. A process
// whose operation failed pauses at least 100 ms, so that a dead node
// does not turn into a busy loop.
func (c *Client) Run(ctx context.Context, w Workload, processes int, seed uint64, pace time.Duration, target func(p int) Target) {
	var wg sync.WaitGroup
	for p := range processes {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(seed, uint64(p)))
			for seq := 0; ctx.Err() == nil; seq++ {
				kind, key, value := w.Next(p, seq, rnd)
				// The operation itself runs to its own timeout even when
				// ctx ends: an operation cut short by the end of the run
				// would only be indeterminate.
				op := c.Do(context.WithoutCancel(ctx), p, target(p), kind, key, value, false)
				wait := pace
				if !op.OK {
					wait = max(wait, 100*time.Millisecond)
				}
				if wait > 0 {
					select {
					case <-ctx.Done():
					case <-time.After(wait):
					}
				}
			}
		})
	}
	wg.Wait()
}
