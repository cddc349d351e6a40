package main

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/dhtkit/dhtkit"
	"github.com/dhtkit/dhtkit/chord"
	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/owner"
	"github.com/dhtkit/dhtkit/store"
)

// Key is the key every sensor writes under (the seed's
// hash(pollution_level)).
const Key = "pollution_level"

// Options of a run.
type Options struct {
	Protocol string // dhtkit.Kademlia or dhtkit.Chord
	Sensors  int
	Viewers  int
	Readings int // per sensor
	// Interval is the time between a sensor's readings; 0: as fast as the
	// network takes them.
	Interval time.Duration
	Out      io.Writer // what viewers print; nil: nothing
}

func (o Options) check() error {
	switch {
	case o.Protocol != dhtkit.Kademlia && o.Protocol != dhtkit.Chord:
		return fmt.Errorf("-protocol %q: want kademlia or chord", o.Protocol)
	case o.Sensors < 1 || o.Sensors > 50:
		return fmt.Errorf("-sensors %d: want 1 to 50", o.Sensors)
	case o.Viewers < 1 || o.Viewers > 20:
		return fmt.Errorf("-viewers %d: want 1 to 20", o.Viewers)
	case o.Readings < 1 || o.Readings > 10000:
		return fmt.Errorf("-readings %d: want 1 to 10000", o.Readings)
	case o.Interval < 0:
		return fmt.Errorf("-interval %v: want 0 or more", o.Interval)
	}
	return nil
}

// Reading is what a sensor puts, signed: the seed's JSON, with the
// sensor's name and the reading's number.
type Reading struct {
	Sensor string  `json:"sensor"`
	Seq    int     `json:"seq"`
	Level  int     `json:"lvl_percent"`
	Lat    float64 `json:"lat"`
	Long   float64 `json:"long"`
}

// Result is what a run saw.
type Result struct {
	// Seen counts, per viewer, the distinct readings it heard of.
	Seen []int
	// Final is one viewer's get of the key after the last reading: every
	// value that a sensor signed under its own id, by sensor.
	Final []Reading
}

// valueID is a sensor's value id: the first 8 bytes of its public key,
// so that a viewer can tell a sensor's value from one put under its id by
// someone else (and the id's owner rule keeps others off it anyway).
func valueID(pub ed25519.PublicKey) store.ValueID {
	return store.ValueID(binary.BigEndian.Uint64(pub[:8]) | 1) // never the default id
}

// Run starts a network of o.Sensors + o.Viewers nodes, has the sensors
// put their readings concurrently while the viewers listen, and returns
// what the viewers saw.
func Run(ctx context.Context, o Options) (Result, error) {
	if err := o.check(); err != nil {
		return Result{}, err
	}
	nodes, err := startNetwork(ctx, o.Protocol, o.Sensors+o.Viewers)
	defer func() {
		for _, n := range nodes {
			n.Close()
		}
	}()
	if err != nil {
		return Result{}, err
	}
	sensors, viewers := nodes[:o.Sensors], nodes[o.Sensors:]
	want := o.Sensors * o.Readings

	// Viewers first: each listens, and counts the readings it heard of.
	var mu sync.Mutex
	seen := make([]map[string]bool, len(viewers)) // "sensor/seq"
	changed := make(chan struct{}, 1)
	vctx, stopViewers := context.WithCancel(ctx)
	defer stopViewers()
	var wg sync.WaitGroup
	for i, v := range viewers {
		seen[i] = map[string]bool{}
		ch, err := v.WatchValues(vctx, Key)
		if err != nil {
			return Result{}, fmt.Errorf("viewer %d: %w", i+1, err)
		}
		wg.Go(func() {
			for c := range ch {
				if c.Reason != dhtkit.Added && c.Reason != dhtkit.Changed {
					continue
				}
				r, err := open(c.Value)
				if err != nil {
					say(o.Out, &mu, "viewer %d: illegally formatted value received (%v)\n", i+1, err)
					continue
				}
				mu.Lock()
				seen[i][fmt.Sprintf("%s/%d", r.Sensor, r.Seq)] = true
				mu.Unlock()
				say(o.Out, &mu, "viewer %d: sensor %s at lat: %.6f, long: %.6f - pollution detected: %d (reading %d)\n", i+1, r.Sensor, r.Lat, r.Long, r.Level, r.Seq)
				select {
				case changed <- struct{}{}:
				default:
				}
			}
		})
	}
	count := func() (all int) {
		mu.Lock()
		defer mu.Unlock()
		for _, s := range seen {
			all += len(s)
		}
		return all
	}

	// Sensors: concurrently, each its readings, one after the other.
	errs := make([]error, len(sensors))
	var sw sync.WaitGroup
	for i, n := range sensors {
		sw.Go(func() {
			errs[i] = sense(ctx, n, o)
		})
	}
	sw.Wait()
	if err := errors.Join(errs...); err != nil {
		return Result{}, err
	}
	// Every viewer has heard every reading, or the context ends.
	for {
		if count() == want*len(viewers) {
			break
		}
		select {
		case <-changed:
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return Result{}, fmt.Errorf("the viewers heard %d of the %d readings: %w", count(), want*len(viewers), ctx.Err())
		}
	}
	stopViewers()
	wg.Wait()

	res := Result{Seen: make([]int, len(viewers))}
	for i := range seen {
		res.Seen[i] = len(seen[i])
	}
	vs, err := viewers[0].Values(ctx, Key)
	if err != nil {
		return res, fmt.Errorf("get %q: %w", Key, err)
	}
	for _, v := range vs {
		if r, err := open(v); err == nil {
			res.Final = append(res.Final, r)
		}
	}
	sort.Slice(res.Final, func(i, j int) bool { return res.Final[i].Sensor < res.Final[j].Sensor })
	return res, nil
}

// sense is one sensor: its identity, then o.Readings signed readings under
// its own value id.
func sense(ctx context.Context, n *dhtkit.Node, o Options) error {
	id, err := dhtkit.NewIdentity(nil)
	if err != nil {
		return err
	}
	pub := id.SignPublic()
	vid := valueID(pub)
	name := hex.EncodeToString(pub[:4])
	rk := store.ValueKey(Key, vid) // what the sensor signs: the key and its value id
	rng := rand.New(rand.NewPCG(uint64(vid), 1))
	lat, long := 39+rng.Float64()*0.1, 125.6+rng.Float64()*0.2
	var last store.Version
	for seq := 1; seq <= o.Readings; seq++ {
		b, _ := json.Marshal(Reading{Sensor: name, Seq: seq, Level: 20 + rng.IntN(80), Lat: lat, Long: long})
		sealed, err := dhtkit.SealWith(rk, b, id.Sign, nil, dhtkit.SignOptions{
			Version: owner.NextVersion(pub, time.Now(), last),
			TTL:     10 * time.Minute,
		})
		if err != nil {
			return err
		}
		if last, err = n.Put(ctx, Key, sealed, dhtkit.PutOptions{ID: vid}); err != nil {
			return fmt.Errorf("sensor %s, reading %d: %w", name, seq, err)
		}
		if seq < o.Readings && o.Interval > 0 {
			select {
			case <-time.After(o.Interval):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}

// open checks a value as a viewer must: signed (the node checked the
// signature against the key and the value id; Open checks it again), by
// the sensor whose id it is under, and a reading.
func open(v dhtkit.Value) (Reading, error) {
	o, err := dhtkit.Open(store.ValueKey(Key, v.ID), v.Data, nil)
	if err != nil {
		return Reading{}, err
	}
	if o.Signer == nil || valueID(o.Signer) != v.ID {
		return Reading{}, fmt.Errorf("value %v is not signed by the sensor whose id it is", v.ID)
	}
	var r Reading
	if err := json.Unmarshal(o.Payload, &r); err != nil {
		return Reading{}, err
	}
	if r.Sensor != hex.EncodeToString(o.Signer[:4]) {
		return Reading{}, fmt.Errorf("reading of %q signed by %x", r.Sensor, []byte(o.Signer[:4]))
	}
	return r, nil
}

func say(w io.Writer, mu *sync.Mutex, format string, args ...any) {
	if w == nil {
		return
	}
	mu.Lock()
	defer mu.Unlock()
	fmt.Fprintf(w, format, args...)
}

// startNetwork starts n nodes on loopback, each joining through the
// first, and waits until every node reads what another wrote.
func startNetwork(ctx context.Context, protocol string, n int) ([]*dhtkit.Node, error) {
	var nodes []*dhtkit.Node
	for i := range n {
		cfg := dhtkit.Config{
			Protocol: protocol,
			Listen:   "127.0.0.1:0",
			Network:  "sensors-demo",
			Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
			Kademlia: kademlia.DefaultConfig(),
		}
		cfg.Kademlia.TrustLoopback = true // every node shares 127.0.0.1
		if protocol == dhtkit.Chord {
			cfg.Chord = chord.Config{
				StabilizeInterval:        100 * time.Millisecond,
				FixFingersInterval:       100 * time.Millisecond,
				CheckPredecessorInterval: 300 * time.Millisecond,
				SyncInterval:             2 * time.Second,
			}
		}
		if i > 0 {
			cfg.Bootstrap = []string{nodes[0].Addr().String()}
		}
		nd, err := dhtkit.Listen(ctx, cfg)
		if err != nil {
			return nodes, fmt.Errorf("node %d: %w", i+1, err)
		}
		nodes = append(nodes, nd)
	}
	if protocol == dhtkit.Kademlia {
		// Each also meets a few of the others, as a real network's nodes
		// would have.
		for i, nd := range nodes[1:] {
			var seeds []netip.AddrPort
			for j := range min(3, i+1) {
				seeds = append(seeds, nodes[j].Addr())
			}
			if err := nd.Bootstrap(ctx, seeds...); err != nil {
				return nodes, fmt.Errorf("node %d: %w", i+2, err)
			}
		}
	}
	// Ready: a value one node writes, every node reads.
	const probe = "sensors-demo/ready"
	for {
		ok := true
		if _, err := nodes[0].Put(ctx, probe, []byte("ready"), dhtkit.PutOptions{TTL: time.Minute}); err != nil {
			ok = false
		}
		for _, nd := range nodes[1:] {
			if !ok {
				break
			}
			if _, err := nd.Get(ctx, probe); err != nil {
				ok = false
			}
		}
		if ok && agree(ctx, nodes) {
			return nodes, nil
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return nodes, fmt.Errorf("the network of %d %s nodes did not settle: %w", n, protocol, ctx.Err())
		}
	}
}

// agree reports whether every node names the same replica set for Key,
// every member answering. The viewers register with the set their node
// sees, and the sensors write to the set theirs sees: in a network whose
// nodes have just started (a Chord ring still stabilizing) the two can
// differ, and a viewer then hears a reading only once its next refresh
// finds the set the sensors wrote to, by when the sensor may have written
// newer ones. A network that was up before its listeners is what the
// example shows.
func agree(ctx context.Context, nodes []*dhtkit.Node) bool {
	var first string
	for i, nd := range nodes {
		hs, err := nd.Where(ctx, Key)
		if err != nil {
			return false
		}
		ids := make([]string, 0, len(hs))
		for _, h := range hs {
			if h.Err != nil {
				return false
			}
			if h.Self {
				ids = append(ids, nd.ID().String())
			} else {
				ids = append(ids, h.Node.ID.String())
			}
		}
		sort.Strings(ids)
		set := fmt.Sprint(ids)
		if i == 0 {
			first = set
		} else if set != first {
			return false
		}
	}
	return true
}
