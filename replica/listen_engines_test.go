package replica_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/chord"
	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/krpc"
	"github.com/dhtkit/dhtkit/store"
)

// TestEnginesListenSensors is issue 12's sensor must-show on both
// engines, without sockets: 3 sensors put 5 readings each to one key,
// concurrently and back to back; every listener hears all 15 versions,
// pushed (no listener sends a dk_fetch meanwhile), and a get of every
// value afterwards returns 3, the latest reading of each sensor. Then a
// new listener of a key holding 64 values of 1 KiB, more than the first
// answer to dk_listen has room for, hears every one of them.
func TestEnginesListenSensors(t *testing.T) {
	forEach(t, func(t *testing.T, p protocol) {
		n := newNetwork(t, p, 41)
		n.build(12, nodeConfig{replicas: 3})
		const key, sensors, readings = "pollution_level", 3, 5
		reps := p.replicas(n.live(), store.KeyTarget(key), 3)
		var others []*node
		for _, nd := range n.Order {
			if !slices.Contains(reps, nd) {
				others = append(others, nd)
			}
		}
		listeners, writers := others[:3], others[3:3+sensors]
		ops := make([]kademlia.OpID, len(listeners))
		for i, l := range listeners {
			ops[i] = l.e.Start(n.Now, kademlia.KVListen{Key: key})
			n.Flush(l)
		}
		n.Run(5 * time.Second)
		heard := func(l *node, op kademlia.OpID) map[string]bool {
			seen := map[string]bool{}
			for _, ev := range l.events {
				if ev.Op == op {
					seen[string(ev.Record.Value)] = true
				}
			}
			return seen
		}

		// The sensors: each puts its next reading as soon as its last
		// is acknowledged, all three at once.
		fetches := func() (sum uint64) {
			for _, l := range listeners {
				sum += fetchesOut(l)
			}
			return sum
		}
		before := fetches()
		next := make([]int, sensors)
		pending := make([]kademlia.OpID, sensors)
		put := func(s int) {
			next[s]++
			w := writers[s]
			pending[s] = w.e.Start(n.Now, kademlia.KVPut{Key: store.ValueKey(key, store.ValueID(s+1)), Value: []byte(fmt.Sprintf("sensor %d reading %d", s+1, next[s]))})
			n.Flush(w)
		}
		for s := range sensors {
			put(s)
		}
		done := func() bool {
			all := true
			for s := range sensors {
				r, ok := writers[s].results[pending[s]]
				if !ok {
					all = false
					continue
				}
				if r.Err != nil {
					t.Fatalf("sensor %d reading %d: %v", s+1, next[s], r.Err)
				}
				if next[s] < readings {
					put(s)
					all = false
				}
			}
			return all
		}
		if !n.RunUntil(5*time.Minute, done) {
			t.Fatal("the sensors did not finish within 5 virtual minutes")
		}
		n.Run(2 * time.Second)
		for i, l := range listeners {
			if got := heard(l, ops[i]); len(got) != sensors*readings {
				t.Errorf("listener %d heard %d of the %d readings", i+1, len(got), sensors*readings)
			}
		}
		if got := fetches() - before; got != 0 {
			t.Errorf("the listeners sent %d dk_fetch while the sensors wrote: they poll", got)
		}
		g := n.do(n.Order[0], kademlia.KVGet{Key: key, All: true})
		if g.Err != nil || len(g.Records) != sensors {
			t.Fatalf("get of every value: %d records, %v; want %d", len(g.Records), g.Err, sensors)
		}
		for _, r := range g.Records {
			if !strings.HasSuffix(string(r.Value), fmt.Sprintf("reading %d", readings)) {
				t.Errorf("%q: not the latest reading", r.Value)
			}
		}

		// A new listener of 64 values of 1 KiB hears each once.
		const crowded = "crowded"
		for i := range store.MaxValuesPerKey {
			v := []byte(strings.Repeat(fmt.Sprint(i%10), 1024))
			if r := n.do(writers[0], kademlia.KVPut{Key: store.ValueKey(crowded, store.ValueID(i+1)), Value: v}); r.Err != nil {
				t.Fatalf("put %d: %v", i, r.Err)
			}
		}
		l := listeners[0]
		op := l.e.Start(n.Now, kademlia.KVListen{Key: crowded})
		n.Flush(l)
		n.Run(5 * time.Second)
		count := map[string]int{}
		for _, ev := range l.events {
			if ev.Op == op && len(ev.Record.Value) == 1024 {
				count[ev.Record.Key]++
			}
		}
		if len(count) != store.MaxValuesPerKey {
			t.Errorf("the new listener heard %d of the %d values", len(count), store.MaxValuesPerKey)
		}
		for k, c := range count {
			if c != 1 {
				t.Errorf("%q heard %d times", k, c)
			}
		}
	})
}

// fetchesOut is the number of dk_fetch queries nd sent.
func fetchesOut(nd *node) uint64 {
	switch e := nd.e.(type) {
	case *kademlia.Engine:
		return e.Stats().QueriesOut[krpc.MethodFetch]
	case *chord.Engine:
		st := e.Stats()
		for i, c := range st.QueriesOut {
			if chord.MethodName(i) == "dk_fetch" {
				return c
			}
		}
	}
	panic("fetchesOut: an engine of neither protocol")
}
