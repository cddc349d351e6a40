package fault

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Net is a network of Linux network namespaces whose packets all pass
// through a switch in this process: each namespace has one interface,
// a TUN device (tun0) holding its address, and every IP packet a
// namespace sends to another is read from one TUN device and written
// into the other. The switch is the nemesis: it drops the packets that
// cross a partition, drops a fraction at random (loss) and holds the
// rest back (delay). The kernels this suite runs on in CI may lack
// sch_netem, and a switch of our own needs nothing but a TUN device.
//
// Each namespace's loopback is up, so a node can serve its HTTP API on
// 127.0.0.1 there; Endpoint's HTTP client dials into the namespace, so
// the test's own HTTP traffic never crosses the switch's faults.
type Net struct {
	prefix string
	subnet [3]byte // the first three bytes of every address: a /24
	lock   *os.File

	mu        sync.Mutex
	endpoints []*Endpoint
	byAddr    map[netip.Addr]*Endpoint
	side      map[netip.Addr]int // partition: the side of each address; nil when whole
	loss      float64
	delay     time.Duration
	rnd       *rand.Rand

	forwarded, dropped atomic.Int64
	wg                 sync.WaitGroup
}

// Endpoint is one namespace of a Net.
type Endpoint struct {
	NS   string     // the namespace's name, for `ip netns exec`
	Addr netip.Addr // its address on the switch
	// HTTP reaches the namespace's own loopback (and only it).
	HTTP *http.Client
	tun  *os.File
}

// Exec returns the command prefix that runs a program inside e.
func (e *Endpoint) Exec() []string { return []string{"ip", "netns", "exec", e.NS} }

// Supported returns nil when this process can build a Net, else what is
// missing and how to get it.
func Supported() error {
	if os.Geteuid() != 0 {
		return errors.New("network namespaces need root (run the tests as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("the ip command is missing: apt-get install iproute2")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return fmt.Errorf("no TUN device (/dev/net/tun): %w", err)
	}
	return nil
}

// maxSlots bounds how many Nets may exist at once on a machine, over
// every process: slot k has the /24 10.(100+k/256).(k%256).0, so the
// slots stay inside 10.100.0.0–10.115.255.255.
const maxSlots = 16 * 256

// slotDir holds the slots' lock files: a fixed directory, not
// os.TempDir, so that two processes with different TMPDIRs still see
// each other's slots.
const slotDir = "/tmp"

// NewNet makes an empty network whose namespaces are named prefixS-n1,
// prefixS-n2, … and whose addresses are 10.A.B.1, 10.A.B.2, …, where the
// number S and the /24 10.A.B come from a slot this Net holds. A slot
// is an exclusive lock on a file in slotDir, taken
// without waiting, so two Nets alive at once on a machine, in one test
// process or in two, never share a slot: their namespace names and
// addresses cannot clash, and a concurrent run of the suite elsewhere
// cannot delete or reuse ours. The lock dies with its process, so a
// killed run's slot is free again; whoever takes it first under the same
// prefix removes the namespaces that run left behind. prefix is 1 to 6 letters (letters,
// then the slot's digits: two prefixes never make the same name), so
// that a name stays within the 15 characters of an interface name.
func NewNet(prefix string) (*Net, error) {
	if err := Supported(); err != nil {
		return nil, err
	}
	if prefix == "" || len(prefix) > 6 || strings.Trim(prefix, "abcdefghijklmnopqrstuvwxyz") != "" {
		return nil, fmt.Errorf("prefix %q: want 1 to 6 lower-case letters", prefix)
	}
	for k := range maxSlots {
		lock, err := os.OpenFile(filepath.Join(slotDir, fmt.Sprintf("dhtkit-fault-slot-%d.lock", k)), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return nil, err
		}
		if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			lock.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				continue // another Net, here or in another process, holds it
			}
			return nil, fmt.Errorf("locking %s: %w", lock.Name(), err)
		}
		n := &Net{prefix: prefix + strconv.Itoa(k), subnet: [3]byte{10, byte(100 + k/256), byte(k % 256)},
			lock: lock, byAddr: map[netip.Addr]*Endpoint{},
			rnd: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))}
		n.removeStale()
		return n, nil
	}
	return nil, fmt.Errorf("all %d network slots are taken", maxSlots)
}

func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// removeStale deletes the namespaces a killed run left behind under
// this Net's names (its slot was that run's).
func (n *Net) removeStale() {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if strings.HasPrefix(name, n.prefix+"-n") {
			_ = ipCmd("netns", "delete", name)
		}
	}
}

// Add makes a namespace with its TUN device on the switch.
func (n *Net) Add() (*Endpoint, error) {
	n.mu.Lock()
	i := len(n.endpoints) + 1
	n.mu.Unlock()
	if i > 250 {
		return nil, errors.New("a Net holds at most 250 namespaces")
	}
	e := &Endpoint{NS: fmt.Sprintf("%s-n%d", n.prefix, i), Addr: netip.AddrFrom4([4]byte{n.subnet[0], n.subnet[1], n.subnet[2], byte(i)})}
	if err := ipCmd("netns", "add", e.NS); err != nil {
		return nil, err
	}
	fail := func(err error) (*Endpoint, error) {
		if e.tun != nil {
			e.tun.Close()
		}
		_ = ipCmd("netns", "delete", e.NS)
		return nil, err
	}
	if err := ipCmd("-n", e.NS, "link", "set", "lo", "up"); err != nil {
		return fail(err)
	}
	var err error
	if err = inNS(e.NS, func() error { e.tun, err = openTUN("tun0"); return err }); err != nil {
		return fail(fmt.Errorf("TUN device in %s: %w", e.NS, err))
	}
	for _, args := range [][]string{
		{"-n", e.NS, "addr", "add", e.Addr.String() + "/24", "dev", "tun0"},
		// Large enough for any datagram without fragments.
		{"-n", e.NS, "link", "set", "tun0", "mtu", "65000", "up"},
	} {
		if err := ipCmd(args...); err != nil {
			return fail(err)
		}
	}
	ns := e.NS
	e.HTTP = &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
			err = inNS(ns, func() error {
				var d net.Dialer
				c, err = d.DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
		MaxIdleConnsPerHost: 64,
	}}
	n.mu.Lock()
	n.endpoints = append(n.endpoints, e)
	n.byAddr[e.Addr] = e
	n.mu.Unlock()
	n.wg.Go(func() { n.forward(e) })
	return e, nil
}

// Endpoints returns the namespaces in the order Add made them.
func (n *Net) Endpoints() []*Endpoint {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.endpoints)
}

// inNS runs f on an OS thread that has entered namespace ns: sockets
// and devices f creates belong to ns.
func inNS(ns string, f func() error) error {
	errc := make(chan error, 1)
	// A goroutine of its own: should returning to our namespace fail, its
	// thread ends with it instead of serving others from the wrong one.
	go func() {
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer self.Close()
		target, err := os.Open(filepath.Join("/var/run/netns", ns))
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("entering %s: %w", ns, err)
			return
		}
		ferr := f()
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(ferr, err) // the thread stays locked and ends
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// openTUN makes a TUN device (IP packets, no header) in the calling
// thread's namespace; it disappears when the file closes.
func openTUN(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("TUNSETIFF: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}

// forward moves the packets e sends to their destinations until e's
// device closes.
func (n *Net) forward(e *Endpoint) {
	buf := make([]byte, 1<<16)
	for {
		k, err := e.tun.Read(buf)
		if err != nil {
			return
		}
		pkt := buf[:k]
		if k < 20 || pkt[0]>>4 != 4 {
			continue // IPv6 router solicitations and the like
		}
		dst := netip.AddrFrom4([4]byte(pkt[16:20]))
		n.mu.Lock()
		to := n.byAddr[dst]
		drop := to == nil || (n.side != nil && n.side[e.Addr] != n.side[dst]) ||
			(n.loss > 0 && n.rnd.Float64() < n.loss)
		delay := n.delay
		n.mu.Unlock()
		if drop {
			n.dropped.Add(1)
			continue
		}
		n.forwarded.Add(1)
		p := append([]byte(nil), pkt...)
		if delay <= 0 {
			_, _ = to.tun.Write(p)
			continue
		}
		time.AfterFunc(delay, func() { _, _ = to.tun.Write(p) })
	}
}

// Partition cuts the network into sides: a packet passes only between
// endpoints of one side. Endpoints in no side form one more side.
func (n *Net) Partition(sides ...[]*Endpoint) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.side = map[netip.Addr]int{}
	for i, s := range sides {
		for _, e := range s {
			n.side[e.Addr] = i + 1
		}
	}
}

// Heal ends the partition.
func (n *Net) Heal() {
	n.mu.Lock()
	n.side = nil
	n.mu.Unlock()
}

// Impair drops the fraction loss of every packet and delays the others
// by delay; Impair(0, 0) ends it.
func (n *Net) Impair(loss float64, delay time.Duration) {
	n.mu.Lock()
	n.loss, n.delay = loss, delay
	n.mu.Unlock()
}

// Counts returns how many packets the switch forwarded and dropped.
func (n *Net) Counts() (forwarded, dropped int64) { return n.forwarded.Load(), n.dropped.Load() }

// Close removes every namespace (stop the processes in them first) and
// frees its slot.
func (n *Net) Close() error {
	n.mu.Lock()
	eps := n.endpoints
	n.endpoints = nil
	n.mu.Unlock()
	var errs []error
	for _, e := range eps {
		e.HTTP.CloseIdleConnections()
		e.tun.Close()
		if err := ipCmd("netns", "delete", e.NS); err != nil {
			errs = append(errs, err)
		}
	}
	n.wg.Wait()
	unix.Flock(int(n.lock.Fd()), unix.LOCK_UN)
	n.lock.Close()
	return errors.Join(errs...)
}
