package e2e

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit/krpc"
)

// spoofer sends UDP datagrams with any IPv4 source address and port, the
// way an attacker on the path (or one whose network does not filter source
// addresses) forges a member's address. It needs a raw socket: root or
// CAP_NET_RAW.
type spoofer struct{ fd int }

func newSpoofer(t *testing.T) *spoofer {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_RAW)
	if err != nil {
		t.Skipf("forging source addresses needs a raw socket (root or CAP_NET_RAW): %v", err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	return &spoofer{fd: fd}
}

// send writes payload to `to` as if it came from `from`.
func (s *spoofer) send(t *testing.T, from, to netip.AddrPort, payload []byte) {
	t.Helper()
	pkt := make([]byte, 28+len(payload))
	pkt[0] = 0x45 // IPv4, 20-byte header
	binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
	pkt[8] = 64 // TTL
	pkt[9] = syscall.IPPROTO_UDP
	src, dst := from.Addr().As4(), to.Addr().As4()
	copy(pkt[12:16], src[:])
	copy(pkt[16:20], dst[:])
	// The kernel fills in the IP checksum and id; a zero UDP checksum
	// means none (IPv4).
	binary.BigEndian.PutUint16(pkt[20:], from.Port())
	binary.BigEndian.PutUint16(pkt[22:], to.Port())
	binary.BigEndian.PutUint16(pkt[24:], uint16(8+len(payload)))
	copy(pkt[28:], payload)
	if err := syscall.Sendto(s.fd, pkt, 0, &syscall.SockaddrInet4{Addr: dst}); err != nil {
		t.Fatalf("sending a forged datagram: %v", err)
	}
}

// TestSpoofedSource forges datagrams from members' own addresses: a dk_bye
// that claims to be a member leaving, and a dk_store without a token,
// which a replica trusts from a contact's address. Without a key the
// forged write wins (what the README says a keyless network is open to);
// with a key both are dropped, counted, and change nothing.
func TestSpoofedSource(t *testing.T) {
	t.Parallel()
	for _, keyed := range []bool{false, true} {
		name := map[bool]string{false: "without key", true: "with key"}[keyed]
		t.Run(name, func(t *testing.T) {
			sp := newSpoofer(t)
			c, _ := greetingTrio(t, keyed)
			victim, member := c.nodes[0], c.nodes[1]
			memberID, err := hexID(member.id)
			if err != nil {
				t.Fatal(err)
			}
			third := c.nodes[2]
			if !keyed {
				// The forged write below wins only if the victim holds
				// third as a contact that answered it: a node that only
				// queried us is unproven (kvserver.go's contact). The
				// greeting's put need not have waited for third's
				// answer, so wait for it here.
				waitAnswered(t, c, victim, third)
			}
			a := newAttacker(t)
			from := netip.MustParseAddrPort(member.udp)
			to := netip.MustParseAddrPort(victim.udp)
			before := c.status(victim).Routing.Nodes
			// A dk_bye that claims to be member, from member's address.
			sp.send(t, from, to, a.query(krpc.MethodBye, krpc.Args{Has: krpc.HasID, ID: memberID}))
			dropped := func() error {
				if got := c.status(victim).Routing.Nodes; got != before-1 {
					return fmt.Errorf("%d contacts, %d before", got, before)
				}
				return nil
			}
			// Without a key the victim drops member at once, but member
			// talks to it again within milliseconds in a cluster this
			// busy, and is back: the effect is real (issue 10 measured
			// 2 minutes out of lookups) but too brief to assert here.
			// A tokenless dk_store from the other member's address: a
			// replica trusts it while that contact is in its table.
			thirdID, err := hexID(third.id)
			if err != nil {
				t.Fatal(err)
			}
			sp.send(t, netip.MustParseAddrPort(third.udp), to, a.query(krpc.MethodStore, krpc.Args{Has: krpc.HasID | krpc.HasX, ID: thirdID,
				X: recordX("greeting", []byte("pwned"), false, time.Second)}))
			stored := func() error {
				if got, err := c.get(victim, "greeting"); err != nil || string(got) != "pwned" {
					return fmt.Errorf("greeting is %q, %v", got, err)
				}
				return nil
			}
			if !keyed {
				if _, err := waitFor(5*time.Second, stored); err != nil {
					t.Errorf("without a key a forged tokenless dk_store from a member's address should win: %v", err)
				}
				return
			}
			_, err = waitFor(2*time.Second, func() error {
				if ks := c.keyStatus(victim).NetworkKey; ks.Undecryptable < 2 {
					return fmt.Errorf("%d undecryptable datagrams counted", ks.Undecryptable)
				}
				return nil
			})
			if err != nil {
				t.Errorf("the victim did not count the 2 forged datagrams: %v", err)
			}
			if dropped() == nil {
				t.Error("a forged dk_bye dropped the member from the victim's table")
			}
			if stored() == nil {
				t.Error("a forged dk_store from a member's address was stored")
			}
		})
	}
}

// waitAnswered waits until n's routing table holds m as a contact that
// answered one of n's queries.
func waitAnswered(t *testing.T, c *cluster, n, m *node) {
	t.Helper()
	_, err := waitFor(30*time.Second, func() error {
		var rt struct {
			Buckets []struct {
				Contacts []struct {
					Addr      string `json:"addr"`
					Responded bool   `json:"responded"`
				} `json:"contacts"`
			} `json:"buckets"`
		}
		if err := c.getJSON(n, "/v1/routing", &rt); err != nil {
			return err
		}
		for _, b := range rt.Buckets {
			for _, ct := range b.Contacts {
				if ct.Addr == m.udp && ct.Responded {
					return nil
				}
			}
		}
		return fmt.Errorf("%s holds no contact at %s that answered it", n.name, m.udp)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestNetworkKeySIGHUP: a node re-reads its key file on SIGHUP, also when
// the file changed in a way its once-a-second check does not see (same
// inode, size and modification time).
func TestNetworkKeySIGHUP(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 1)
	key := filepath.Join(c.dir, "network.key")
	makeKey(t, key)
	c.flags = []string{"--network-key", key}
	n := c.add("")
	before := c.keyStatus(n).NetworkKey.IDs
	st, err := os.Stat(key)
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(c.dir, "other.key")
	makeKey(t, other)
	text, err := os.ReadFile(other)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(key, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(text, 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Chtimes(key, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond) // two of the node's checks
	if got := c.keyStatus(n).NetworkKey.IDs; !slices.Equal(got, before) {
		t.Fatalf("keys changed without a signal (%v → %v): the test cannot tell SIGHUP from the file check", before, got)
	}
	if err := n.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if _, err := waitFor(10*time.Second, func() error {
		if got := c.keyStatus(n).NetworkKey.IDs; slices.Equal(got, before) {
			return os.ErrDeadlineExceeded
		}
		return nil
	}); err != nil {
		t.Fatal("SIGHUP did not reload the key file")
	}
	if !n.running() {
		t.Fatal("the node exited on SIGHUP")
	}
}
