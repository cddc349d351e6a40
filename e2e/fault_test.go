package e2e

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/fault"
)

var (
	faultFull    = flag.Bool("full", os.Getenv("DHTKIT_FAULT_FULL") != "", "run the fault suite's full scenarios (about 25 minutes; give -timeout 90m)")
	faultFigures = flag.String("figures", "", "append one Markdown table row per fault scenario to this file")
)

// faultScenario is one run of the fault suite: a cluster, the register
// and set workloads through every node, one nemesis, then the heal, the
// wait for convergence, the final reads and the checker.
type faultScenario struct {
	name     string
	protocol string
	nodes    int
	nemesis  func(f *faultRun) // runs in the test goroutine; returns with every fault over
	netns    bool              // the nodes need namespaces on the fault switch
	keys     int               // of the register workload
	// converge bounds the wait, from the heal, for every key to be one
	// version on its replicas and every contact good; the full run's
	// bound is the 60 s.
	converge time.Duration
}

// faultRun is the state of one scenario while it runs.
type faultRun struct {
	t      *testing.T
	c      *cluster
	net    *fault.Net
	rnd    *rand.Rand
	start  time.Time
	healed time.Time // when the last fault ended
	// sides of the partition, and when it held; minority writes are the
	// ones acknowledged by a side holding fewer than a majority of a key's
	// replicas.
	sides           [][]*node
	splitAt, healAt time.Time
	endpointsAll    []*fault.Endpoint
}

func (f *faultRun) logf(format string, args ...any) {
	f.t.Helper()
	f.t.Logf("%5.1fs  %s", time.Since(f.start).Seconds(), fmt.Sprintf(format, args...))
}

// killRestart SIGKILLs a random node every cycle, keeps it down for
// down, and restarts it with the same command line and data directory.
func killRestart(cycles int, up, down time.Duration) func(f *faultRun) {
	return func(f *faultRun) {
		for range cycles {
			time.Sleep(up)
			n := f.c.nodes[f.rnd.IntN(len(f.c.nodes))]
			f.c.kill(n)
			f.logf("SIGKILL %s", n.name)
			time.Sleep(down)
			f.c.start(n)
			f.logf("restarted %s (same --data)", n.name)
		}
		f.healed = time.Now()
	}
}

// stopCont freezes a random node with SIGSTOP for down, then SIGCONT.
func stopCont(cycles int, up, down time.Duration) func(f *faultRun) {
	return func(f *faultRun) {
		for range cycles {
			time.Sleep(up)
			n := f.c.nodes[f.rnd.IntN(len(f.c.nodes))]
			if err := n.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
				f.t.Fatal(err)
			}
			f.logf("SIGSTOP %s", n.name)
			time.Sleep(down)
			if err := n.cmd.Process.Signal(syscall.SIGCONT); err != nil {
				f.t.Fatal(err)
			}
			f.logf("SIGCONT %s", n.name)
		}
		f.healed = time.Now()
	}
}

// partition splits the cluster into a side of the first `first` nodes
// and one of the rest for hold, then heals.
func partition(first int, up, hold time.Duration) func(f *faultRun) {
	return func(f *faultRun) {
		time.Sleep(up)
		a, b := slices.Clone(f.c.nodes[:first]), slices.Clone(f.c.nodes[first:])
		f.sides = [][]*node{a, b}
		f.net.Partition(endpoints(f, a), endpoints(f, b))
		f.splitAt = time.Now()
		f.logf("partition %s | %s", names(a), names(b))
		time.Sleep(hold)
		f.net.Heal()
		f.healAt = time.Now()
		f.healed = f.healAt
		f.logf("healed")
	}
}

// impair drops loss of the packets between nodes and delays the rest by
// delay, for hold.
func impair(loss float64, delay, hold time.Duration) func(f *faultRun) {
	return func(f *faultRun) {
		f.net.Impair(loss, delay)
		f.logf("loss %.0f%%, delay %v", 100*loss, delay)
		time.Sleep(hold)
		f.net.Impair(0, 0)
		f.healed = time.Now()
		fw, dr := f.net.Counts()
		f.logf("network whole again (%d packets forwarded, %d dropped)", fw, dr)
	}
}

func endpoints(f *faultRun, ns []*node) []*fault.Endpoint {
	out := make([]*fault.Endpoint, 0, len(ns))
	for _, n := range ns {
		out = append(out, f.endpoint(n))
	}
	return out
}

// endpoint finds n's namespace by its address.
func (f *faultRun) endpoint(n *node) *fault.Endpoint {
	for _, e := range f.endpointsAll {
		if strings.HasPrefix(n.udp, e.Addr.String()+":") {
			return e
		}
	}
	f.t.Fatalf("%s has no namespace", n.name)
	return nil
}

func names(ns []*node) string {
	var s []string
	for _, n := range ns {
		s = append(s, n.name)
	}
	return strings.Join(s, ",")
}

// faultScenarios is the CI-size run: one short scenario per nemesis, a
// few seconds each; and with -full the issue's: 5 nodes under each of
// SIGKILL with restart, SIGSTOP/SIGCONT, 10% loss with 50 ms delay;
// 6 nodes split 3+3 and 2+4 for 60 s. Both protocols.
func faultScenarios() []faultScenario {
	if !*faultFull {
		return []faultScenario{
			{name: "kill", protocol: "kademlia", nodes: 5, keys: 8, converge: 30 * time.Second,
				nemesis: killRestart(1, 2*time.Second, 2*time.Second)},
			{name: "stop", protocol: "kademlia", nodes: 5, keys: 8, converge: 30 * time.Second,
				nemesis: stopCont(1, 2*time.Second, 3*time.Second)},
			{name: "loss10-delay50ms", protocol: "kademlia", nodes: 5, keys: 8, netns: true, converge: 30 * time.Second,
				nemesis: impair(0.10, 50*time.Millisecond, 4*time.Second)},
			{name: "partition-2+4", protocol: "kademlia", nodes: 6, keys: 8, netns: true, converge: 30 * time.Second,
				nemesis: partition(2, 2*time.Second, 4*time.Second)},
			{name: "kill", protocol: "chord", nodes: 5, keys: 8, converge: 30 * time.Second,
				nemesis: killRestart(1, 2*time.Second, 2*time.Second)},
			{name: "partition-2+4", protocol: "chord", nodes: 6, keys: 8, netns: true, converge: 30 * time.Second,
				nemesis: partition(2, 2*time.Second, 4*time.Second)},
		}
	}
	var out []faultScenario
	for _, p := range []string{"kademlia", "chord"} {
		out = append(out,
			faultScenario{name: "kill", protocol: p, nodes: 5, keys: 20, converge: 60 * time.Second,
				nemesis: killRestart(6, 6*time.Second, 4*time.Second)},
			faultScenario{name: "stop", protocol: p, nodes: 5, keys: 20, converge: 60 * time.Second,
				nemesis: stopCont(6, 5*time.Second, 5*time.Second)},
			faultScenario{name: "loss10-delay50ms", protocol: p, nodes: 5, keys: 20, netns: true, converge: 60 * time.Second,
				nemesis: impair(0.10, 50*time.Millisecond, 60*time.Second)},
			faultScenario{name: "partition-3+3", protocol: p, nodes: 6, keys: 20, netns: true, converge: 60 * time.Second,
				nemesis: partition(3, 5*time.Second, 60*time.Second)},
			faultScenario{name: "partition-2+4", protocol: p, nodes: 6, keys: 20, netns: true, converge: 60 * time.Second,
				nemesis: partition(2, 5*time.Second, 60*time.Second)},
		)
	}
	return out
}

// TestFault is the fault suite (see the README, "Fault suite"). Every
// scenario's history goes through fault.Check: no acknowledged write
// lost, no stale read, no resurrected delete; after the heal every key
// one version on all its replicas and every contact good within the
// bound; with a partition, no write acknowledged by a minority side.
func TestFault(t *testing.T) {
	for _, sc := range faultScenarios() {
		t.Run(sc.protocol+"/"+sc.name, func(t *testing.T) {
			// The short scenarios overlap (each on a switch and namespaces
			// of its own); the full run's take turns, so that their figures
			// are their own.
			if !*faultFull {
				t.Parallel()
			}
			runFault(t, sc)
		})
	}
}

// runFault runs scenario sc: its namespaces, if any, are on a Net of
// their own (dkfS-n1, dkfS-n2, … for a slot S that no other Net on the
// machine holds, see fault.NewNet), so scenarios running at once, here
// or in another process, never clash.
func runFault(t *testing.T, sc faultScenario) {
	f := &faultRun{t: t, rnd: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9)), start: time.Now()}
	if sc.netns {
		if err := fault.Supported(); err != nil {
			t.Skipf("skipped: %v; the %s nemesis puts every node in a network namespace", err, sc.name)
		}
		net, err := fault.NewNet("dkf")
		if err != nil {
			t.Fatal(err)
		}
		// Registered before the cluster's cleanup, so it runs after the
		// nodes are killed.
		t.Cleanup(func() {
			if err := net.Close(); err != nil {
				t.Error(err)
			}
		})
		f.net = net
	}
	const replicas = 3
	c := newCluster(t, replicas)
	c.flags = []string{"--protocol", sc.protocol}
	c.net = f.net
	f.c = c
	seed := c.add("")
	for range sc.nodes - 1 {
		c.add("", seed)
	}
	if f.net != nil {
		f.endpointsAll = f.net.Endpoints()
	}
	f.waitContacts(60 * time.Second)
	f.logf("%d %s nodes up, replicas %d", sc.nodes, sc.protocol, replicas)

	// The workloads: a register per key (reads, writes, deletes) and a
	// set (each write a key of its own), each with a client per node.
	cl := fault.NewClient()
	var keys []string
	for i := range sc.keys {
		keys = append(keys, fmt.Sprintf("reg/%d", i))
	}
	targets := make([]fault.Target, len(c.nodes))
	for i, n := range c.nodes {
		targets[i] = fault.Target{Name: n.name, API: n.api(), HTTP: n.hc}
	}
	target := func(p int) fault.Target { return targets[p%len(targets)] }
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		cl.Run(ctx, fault.Register{Keys: keys, Reads: 0.5, Deletes: 0.1}, sc.nodes, 1, 10*time.Millisecond, target)
	})
	// About 20 new keys a second per node.
	wg.Go(func() { cl.Run(ctx, fault.Set{Prefix: "set/"}, sc.nodes, 2, 50*time.Millisecond, target) })
	stopWorkload := func() {
		cancel()
		wg.Wait()
	}
	defer stopWorkload()

	sc.nemesis(f)
	// Clients keep going a little after the last fault: reads through a
	// restarted node, writes on a healed network.
	time.Sleep(3 * time.Second)
	stopWorkload()
	f.logf("workload over: %d operations", len(cl.History.Ops()))

	// Convergence, from the end of the last fault: when every key was one
	// version on all its replicas, when every contact was good.
	allKeys := cl.History.Keys()
	var failures []string
	keysAt, contactsAt := time.Duration(-1), time.Duration(-1)
	var keysErr, contactsErr error
	diverged := 0
	for deadline := f.healed.Add(sc.converge); ; time.Sleep(250 * time.Millisecond) {
		if contactsAt < 0 {
			if contactsErr = f.contactsGood(); contactsErr == nil {
				contactsAt = time.Since(f.healed)
			}
		}
		if keysAt < 0 {
			d := fault.Diverged(sc.protocol, replicas, allKeys, f.holdings())
			diverged = len(d)
			if len(d) == 0 {
				keysAt, keysErr = time.Since(f.healed), nil
			} else {
				keysErr = fmt.Errorf("%d of %d keys not one version on their replicas, e.g. %s", len(d), len(allKeys), d[0])
			}
		}
		if (keysAt >= 0 && contactsAt >= 0) || time.Now().After(deadline) {
			break
		}
	}
	keysFig, contactsFig := fmt.Sprintf("%.1f s", keysAt.Seconds()), fmt.Sprintf("%.1f s", contactsAt.Seconds())
	// The last look may come a little after the deadline: too late is
	// too late.
	if keysAt > sc.converge {
		failures = append(failures, fmt.Sprintf("keys converged %v after the heal, later than %v", keysAt.Round(100*time.Millisecond), sc.converge))
	}
	if contactsAt > sc.converge {
		failures = append(failures, fmt.Sprintf("contacts good %v after the heal, later than %v", contactsAt.Round(100*time.Millisecond), sc.converge))
	}
	if keysAt < 0 {
		keysFig = fmt.Sprintf("no: %d of %d keys diverged after %v", diverged, len(allKeys), sc.converge)
		failures = append(failures, fmt.Sprintf("keys not converged %v after the heal: %v", sc.converge, keysErr))
		f.logf("keys NOT converged %v after the heal: %v", sc.converge, keysErr)
	} else {
		f.logf("every key one version on its replicas %v after the heal", keysAt.Round(100*time.Millisecond))
	}
	if contactsAt < 0 {
		contactsFig = "no: " + contactsErr.Error()
		failures = append(failures, fmt.Sprintf("contacts not good %v after the heal: %v", sc.converge, contactsErr))
		f.logf("contacts NOT good %v after the heal: %v", sc.converge, contactsErr)
	} else {
		f.logf("every contact good %v after the heal", contactsAt.Round(100*time.Millisecond))
	}

	// The final reads: every register through every node, every element
	// of the set through two nodes (of both sides of a partition).
	var final sync.WaitGroup
	sem := make(chan struct{}, 16)
	for j, k := range allKeys {
		through := []int{j % len(targets), (j + len(targets)/2) % len(targets)}
		if strings.HasPrefix(k, "reg/") {
			through = through[:0]
			for i := range targets {
				through = append(through, i)
			}
		}
		for _, i := range through {
			final.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				cl.Do(context.Background(), -1, targets[i], fault.Read, k, "", true)
			})
		}
	}
	final.Wait()

	ops := cl.History.Ops()
	rep := fault.Check(ops)
	minority, overwritten, minorityEx := f.minorityWrites(ops)
	f.logf("%s", rep.Summary())
	if !rep.Clean() {
		f.t.Logf("anomalies:%s", rep.Examples(12))
	}
	for _, inv := range []struct {
		name string
		n    int
	}{{"lost", rep.Lost}, {"stale", rep.Stale}, {"resurrected", rep.Resurrected}, {"unknown", rep.Unknown}} {
		if inv.n > 0 {
			failures = append(failures, fmt.Sprintf("%d %s (checker: %s)", inv.n, inv.name, rep.Summary()))
		}
	}
	if f.sides != nil {
		f.logf("writes acknowledged by a minority side: %d (%d of them overwritten by a concurrent write or lost)", minority, overwritten)
		for _, ex := range minorityEx {
			f.t.Logf("  minority write: %s", ex)
		}
		if minority > 0 {
			failures = append(failures, fmt.Sprintf("%d writes acknowledged by a side that holds fewer than %d of the key's %d replicas (%d overwritten or lost)",
				minority, replicas/2+1, replicas, overwritten))
		}
	}
	f.figures(sc, rep, minority, keysFig, contactsFig)

	if len(failures) > 0 {
		t.Error(strings.Join(failures, "\n"))
	}
}

// waitContacts waits until every node knows the others (Kademlia: all of
// them; Chord: at least one) and none calls another bad.
func (f *faultRun) waitContacts(timeout time.Duration) {
	f.t.Helper()
	if _, err := waitFor(timeout, f.contactsGood); err != nil {
		f.t.Fatal(err)
	}
}

// routingView is the part of GET /v1/members the suite reads: every node
// a node knows (a Chord node: its predecessor, successors, fingers and the
// neighbours it lost), with its state.
type routingView struct {
	Members []struct {
		Addr  string `json:"addr"`
		State string `json:"state"`
	} `json:"members"`
}

// contactsGood returns nil when every node has a contact for each
// other node (Kademlia; a Chord node at least one) and none of them bad.
func (f *faultRun) contactsGood() error {
	live := f.c.live()
	addrs := map[string]*node{}
	for _, n := range live {
		addrs[n.udp] = n
	}
	chord := slices.Contains(f.c.flags, "chord")
	for _, n := range live {
		var rv routingView
		if err := f.c.getJSON(n, "/v1/members", &rv); err != nil {
			return err
		}
		known := 0
		for _, ct := range rv.Members {
			peer, ok := addrs[ct.Addr]
			if !ok {
				continue
			}
			if ct.State == "bad" {
				return fmt.Errorf("%s calls %s bad", n.name, peer.name)
			}
			known++
		}
		if want := len(live) - 1; !chord && known < want {
			return fmt.Errorf("%s knows %d of the %d other nodes", n.name, known, want)
		}
		if chord {
			if err := f.ringKnown(n, live, rv); err != nil {
				return err
			}
		}
	}
	return nil
}

// ringKnown returns nil when Chord node n knows its true predecessor and
// its true successors among live, as many as there are replicas: the
// nodes that hold n's range and the ranges n holds copies of.
func (f *faultRun) ringKnown(n *node, live []*node, rv routingView) error {
	all := make([]fault.Holding, 0, len(live))
	for _, m := range live {
		all = append(all, fault.Holding{Name: m.name, ID: m.id})
	}
	has := map[string]bool{}
	for _, ct := range rv.Members {
		has[ct.Addr] = true
	}
	// The ring order from just after n: fault.Replicas of n's own id as
	// a target puts n first, its successors after it, its predecessor last.
	ring := fault.ReplicasOf("chord", len(all), n.id, all)
	want := ring[1:min(len(ring), 1+f.c.replicas)]
	if len(ring) > 1 {
		want = append(want, ring[len(ring)-1])
	}
	for _, m := range want {
		if !has[f.c.byName(m.Name).udp] {
			return fmt.Errorf("chord node %s does not know %s, a ring neighbour", n.name, m.Name)
		}
	}
	return nil
}

func (c *cluster) byName(name string) *node {
	for _, n := range c.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

// holdings is what every live node stores.
func (f *faultRun) holdings() []fault.Holding {
	var out []fault.Holding
	for _, n := range f.c.live() {
		out = append(out, fault.Holding{Name: n.name, ID: n.id, Records: f.c.local(n)})
	}
	return out
}

// minorityWrites counts the writes and deletes acknowledged while the
// partition held by a side holding fewer than a majority of the key's
// replicas, and among them those the final state does not show and that
// no later operation explains (overwritten by a concurrent write of the
// other side, or lost). examples names the first few: who acknowledged
// what, and where the key's replicas were.
func (f *faultRun) minorityWrites(ops []fault.Op) (minority, overwritten int, examples []string) {
	if f.sides == nil {
		return 0, 0, nil
	}
	side := map[string]int{}
	var all []fault.Holding
	for i, s := range f.sides {
		for _, n := range s {
			side[n.name] = i
			all = append(all, fault.Holding{Name: n.name, ID: n.id})
		}
	}
	finalVersion := map[string]string{}
	for _, op := range ops {
		if op.Final && op.OK && op.Found {
			finalVersion[op.Key] = max(finalVersion[op.Key], op.Version)
		}
	}
	for _, w := range ops {
		if w.Kind == fault.Read || !w.OK || w.Start.Before(f.splitAt) || w.End.After(f.healAt) {
			continue
		}
		mine := 0
		var where []string
		for _, r := range fault.Replicas(f.c.protocolName(), f.c.replicas, w.Key, all) {
			if side[r.Name] == side[w.Node] {
				mine++
			}
			where = append(where, fmt.Sprintf("%s (side %d)", r.Name, side[r.Name]))
		}
		if mine > f.c.replicas/2 {
			continue
		}
		minority++
		if len(examples) < 8 {
			examples = append(examples, fmt.Sprintf("%s %q through %s (side %d), %s → %s; the key's replicas: %s",
				w.Kind, w.Key, w.Node, side[w.Node], w.Start.Format("15:04:05.000"), w.End.Format("15:04:05.000"), strings.Join(where, ", ")))
		}
		if w.Kind != fault.Write || finalVersion[w.Key] == w.Version {
			continue
		}
		later := false
		for _, o := range ops {
			if o.Key == w.Key && o.Kind != fault.Read && o.Start.After(w.End) {
				later = true
				break
			}
		}
		if !later {
			overwritten++
		}
	}
	return minority, overwritten, examples
}

func (c *cluster) protocolName() string {
	if slices.Contains(c.flags, "chord") {
		return "chord"
	}
	return "kademlia"
}

// figures logs the scenario's row and appends it to -figures.
func (f *faultRun) figures(sc faultScenario, r fault.Report, minority int, keys, contacts string) {
	minor := "—"
	if f.sides != nil {
		minor = fmt.Sprint(minority)
	}
	row := fmt.Sprintf("| %s | %s | %d | %d | %d | %d | %d | %d | %s | %s | %s |",
		sc.protocol, sc.name, sc.nodes, r.Ops, r.Acknowledged, r.Lost, r.Stale, r.Resurrected, minor, keys, contacts)
	f.t.Log(row)
	if *faultFigures == "" {
		return
	}
	fh, err := os.OpenFile(*faultFigures, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err == nil {
		_, err = fmt.Fprintln(fh, row)
		err = errors.Join(err, fh.Close())
	}
	if err != nil {
		f.t.Errorf("-figures: %v", err)
	}
}
