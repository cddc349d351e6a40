package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a process's stdout that the test reads while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// listenEvent is a line of `dhtkit listen --json`.
type listenEvent struct {
	ID, Reason, Signer, Text string
}

func events(out string) []listenEvent {
	var evs []listenEvent
	for _, line := range strings.Split(out, "\n") {
		var ev listenEvent
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Reason != "" {
			evs = append(evs, ev)
		}
	}
	return evs
}

// TestValuesSensorsCLI is the issue's must-show with real processes: 5 `dhtkit
// node` processes; 3 sensors, each `dhtkit put --sign --id` of 5 JSON
// readings, run concurrently against three nodes; 2 `dhtkit listen --json`
// processes on the other two. Every listener prints all 15 readings,
// signed and with their value ids, and `dhtkit get --json` afterwards
// prints 3 values, the latest reading of each sensor. With either
// protocol the sensors put as fast as the network takes them: the
// replicas push every version to the listeners (dk_listen), no one polls.
func TestValuesSensorsCLI(t *testing.T) {
	for _, protocol := range []string{"kademlia", "chord"} {
		t.Run(protocol, func(t *testing.T) {
			c := newCluster(t, 3)
			c.flags = []string{"--protocol", protocol}
			seed := c.add("")
			for range 4 {
				c.add("", seed)
			}
			// Ready when a value put through one node reads from every node.
			if _, err := waitFor(3*time.Minute, func() error {
				if _, errs, code := c.cli(seed, "put", "ready", "yes"); code != 0 {
					return fmt.Errorf("put: %s", errs)
				}
				for _, n := range c.nodes {
					if out, errs, code := c.cli(n, "get", "ready"); code != 0 || out != "yes" {
						return fmt.Errorf("get through %s: %q %s", n.name, out, errs)
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}

			const key, sensors, readings = "pollution_level", 3, 5
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var outs []*lockedBuffer
			var procs []*exec.Cmd
			for _, n := range c.nodes[3:] {
				out := &lockedBuffer{}
				cmd := exec.CommandContext(ctx, bin, "--api", n.api(), "listen", key, "--json")
				cmd.Stdout = out
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				outs, procs = append(outs, out), append(procs, cmd)
			}
			defer func() {
				cancel()
				for _, p := range procs {
					_ = p.Wait()
				}
			}()
			// The listeners are registered once they print a value put now.
			if _, errs, code := c.cli(seed, "put", key, "hello"); code != 0 {
				t.Fatal(errs)
			}
			waitEvents := func(what string, ok func(evs []listenEvent) bool) error {
				_, err := waitFor(2*time.Minute, func() error {
					for i, out := range outs {
						if !ok(events(out.String())) {
							return fmt.Errorf("listener %d has not printed %s:\n%s", i+1, what, out.String())
						}
					}
					return nil
				})
				return err
			}
			has := func(reason, id, text string) func([]listenEvent) bool {
				return func(evs []listenEvent) bool {
					for _, ev := range evs {
						if (reason == "" || ev.Reason == reason) && ev.ID == id && (text == "" || ev.Text == text) {
							return true
						}
					}
					return false
				}
			}
			if err := waitEvents("hello", has("added", "0000000000000000", "hello")); err != nil {
				t.Fatal(err)
			}
			if _, errs, code := c.cli(seed, "del", key); code != 0 {
				t.Fatal(errs)
			}
			if err := waitEvents("the delete of hello", has("deleted", "0000000000000000", "")); err != nil {
				t.Fatal(err)
			}

			// The sensors, concurrently.
			signers := make([]string, sensors)
			var wg sync.WaitGroup
			errc := make(chan error, sensors)
			for s := range sensors {
				idFile := filepath.Join(c.dir, fmt.Sprintf("sensor%d.key", s))
				keys, errs, code := c.cli(seed, "key", "--key", idFile)
				if code != 0 {
					t.Fatal(errs)
				}
				signers[s] = strings.Fields(keys)[1]
				id := fmt.Sprintf("%016x", s+1)
				wg.Go(func() {
					for seq := 1; seq <= readings; seq++ {
						reading := fmt.Sprintf(`{"sensor":%d,"seq":%d,"lvl_percent":%d}`, s+1, seq, 40+seq)
						if _, errs, code := c.cli(c.nodes[s], "put", key, reading, "--id", id, "--sign", "--key", idFile); code != 0 {
							errc <- fmt.Errorf("sensor %d, reading %d: %s", s+1, seq, errs)
							return
						}
					}
				})
			}
			wg.Wait()
			close(errc)
			for err := range errc {
				t.Fatal(err)
			}
			// Every listener prints all 15, each signed by its sensor.
			err := waitEvents("every reading", func(evs []listenEvent) bool {
				seen := map[string]bool{}
				for _, ev := range evs {
					var r struct{ Sensor, Seq int }
					if ev.Reason == "deleted" || json.Unmarshal([]byte(ev.Text), &r) != nil {
						continue
					}
					if r.Sensor < 1 || r.Sensor > sensors || ev.ID != fmt.Sprintf("%016x", r.Sensor) || ev.Signer != signers[r.Sensor-1] {
						t.Errorf("reading %s under id %s signed by %s", ev.Text, ev.ID, ev.Signer)
						continue
					}
					seen[ev.Text] = true
				}
				return len(seen) == sensors*readings
			})
			if err != nil {
				t.Fatal(err)
			}
			out, errs, code := c.cli(c.nodes[4], "get", key, "--json")
			if code != 0 {
				t.Fatalf("get: exit %d, %s", code, errs)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != sensors {
				t.Fatalf("get printed %d values, want %d:\n%s", len(lines), sensors, out)
			}
			for _, line := range lines {
				var v struct{ ID, Text, Signer string }
				var r struct{ Sensor, Seq int }
				if json.Unmarshal([]byte(line), &v) != nil || json.Unmarshal([]byte(v.Text), &r) != nil {
					t.Fatalf("get: %s", line)
				}
				if r.Seq != readings || v.ID != fmt.Sprintf("%016x", r.Sensor) || v.Signer != signers[r.Sensor-1] {
					t.Errorf("get: %s, want sensor %d's reading %d", line, r.Sensor, readings)
				}
			}
		})
	}
}
