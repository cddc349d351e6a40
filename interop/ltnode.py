#!/usr/bin/python3
"""A libtorrent DHT node on loopback, driven over stdin/stdout.

Used by the interop tests (interop/libtorrent_test.go) and by the side-by-side
load benchmark (interop/cmd/dhtload). It needs Debian's python3-libtorrent and
must run under /usr/bin/python3 (the Debian interpreter that package targets).

Protocol: one JSON object per line on stdin, one JSON answer per line on
stdout. The first line written is {"ready": true, "port": P, "id": HEX}.
Commands:
  {"cmd": "add_node", "addr": "127.0.0.1:P"}      add_dht_node (libtorrent pings it)
  {"cmd": "get_peers", "ih": HEX, "timeout": S}   dht_get_peers, waits for its reply alert
  {"cmd": "announce", "ih": HEX}                  adds a torrent by infohash and forces its
                                                  DHT announce (get_peers + announce_peer of
                                                  the session's listen port)
  {"cmd": "sample", "addr": "127.0.0.1:P", "target": HEX, "timeout": S}
                                                  BEP 51 sample_infohashes to one node
  {"cmd": "live_nodes", "timeout": S}             the routing table
  {"cmd": "seen"}                                 counts of packets seen so far, by
                                                  direction, kind and method, and the
                                                  announces received (ih, ip, port)
  {"cmd": "quit"}

Settings needed on loopback (libtorrent 2.0): dht_restrict_routing_ips and
dht_restrict_search_ips off (else one node per IP), dht_enforce_node_id off
(loopback addresses cannot have BEP 42 ids), dht_ignore_dark_internet off,
dht_prefer_verified_node_ids off, no default bootstrap routers
(dht_bootstrap_nodes ""), and lsd/upnp/natpmp off so that nothing leaves the
machine. With --bench the per-IP limit (dht_block_ratelimit, 5 queries/s by
default) and the DHT upload limit (dht_upload_rate_limit, 8000 bytes/s) are
raised so that one loopback load generator is not throttled.
"""

import argparse
import json
import queue
import shutil
import sys
import tempfile
import threading
import time
import warnings

import libtorrent as lt


def parse_addr(s):
    host, port = s.rsplit(":", 1)
    return host.strip("[]"), int(port)


class Node:
    def __init__(self, port, bench, log_packets):
        self.log_packets = log_packets
        mask = (lt.alert.category_t.dht_notification | lt.alert.category_t.dht_operation_notification
                | lt.alert.category_t.error_notification)
        if log_packets:
            mask |= lt.alert.category_t.dht_log_notification
        if bench:
            mask = lt.alert.category_t.error_notification
        settings = {
            "listen_interfaces": "127.0.0.1:%d" % port,
            "enable_dht": True,
            "enable_lsd": False,
            "enable_upnp": False,
            "enable_natpmp": False,
            "enable_incoming_utp": False,
            "enable_outgoing_utp": False,
            "dht_bootstrap_nodes": "",
            "dht_restrict_routing_ips": False,
            "dht_restrict_search_ips": False,
            "dht_enforce_node_id": False,
            "dht_prefer_verified_node_ids": False,
            "dht_ignore_dark_internet": False,
            "alert_mask": int(mask),
            "alert_queue_size": 100000,
        }
        if bench:
            # Large but not huge: dht_block_ratelimit = 2**30 overflows inside
            # libtorrent 2.0.8 and blocks a source after its first query,
            # and dht_upload_rate_limit = 0 kills the process (SIGFPE).
            settings["dht_block_ratelimit"] = 1000000
            settings["dht_upload_rate_limit"] = 100000000
        self.ses = lt.session(settings)
        self.seen = {}
        self.announces = []
        self.pending = []  # (predicate, result list) for alerts awaited
        self.tmpdir = tempfile.mkdtemp(prefix="ltnode-")

    def port(self):
        deadline = time.time() + 10
        while time.time() < deadline:
            p = self.ses.listen_port()
            if p:
                return p
            time.sleep(0.05)
        raise RuntimeError("libtorrent did not open a listen socket")

    def node_id(self):
        """The DHT node id: the first 20 bytes of dht_state's node-id entry
        (libtorrent appends the listen IP)."""
        deadline = time.time() + 10
        while time.time() < deadline:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                ids = self.ses.dht_state().get(b"node-id") or []
            if ids and len(ids[0]) >= 20:
                return bytes(ids[0][:20])
            time.sleep(0.05)
        raise RuntimeError("libtorrent did not start its DHT")

    def pump(self):
        for a in self.ses.pop_alerts():
            if isinstance(a, lt.dht_pkt_alert):
                self.count_packet(a)
            elif isinstance(a, lt.dht_announce_alert):
                self.announces.append({"ih": str(a.info_hash), "ip": str(a.ip), "port": a.port})
            for pred, out in self.pending:
                if pred(a):
                    out.append(a)

    def count_packet(self, a):
        # The message reads "<==" for incoming and "==>" for outgoing.
        msg = a.message()
        direction = "in" if "<==" in msg else "out"
        try:
            d = lt.bdecode(bytes(a.pkt_buf))
        except Exception:
            return
        if not isinstance(d, dict):
            return
        y = d.get(b"y", b"")
        key = direction + " " + (y.decode() if isinstance(y, bytes) else str(y))
        if y == b"q":
            q = d.get(b"q", b"")
            key += " " + (q.decode() if isinstance(q, bytes) else str(q))
        self.seen[key] = self.seen.get(key, 0) + 1

    def wait(self, pred, timeout):
        out = []
        entry = (pred, out)
        self.pending.append(entry)
        try:
            deadline = time.time() + timeout
            while not out and time.time() < deadline:
                self.ses.wait_for_alert(50)
                self.pump()
            return out[0] if out else None
        finally:
            self.pending.remove(entry)


def _node(n):
    if isinstance(n, dict):
        ep = n.get("endpoint")
        return {"id": str(n.get("nid")), "addr": "%s:%d" % (ep[0], ep[1])}
    return {"id": str(n[0]), "addr": "%s:%d" % (n[1][0], n[1][1])}


def handle(node, req):
    cmd = req.get("cmd")
    if cmd == "add_node":
        node.ses.add_dht_node(parse_addr(req["addr"]))
        return {"ok": True}
    if cmd == "get_peers":
        # libtorrent posts a reply alert for each response that carries
        # peers; wait for the first one.
        ih = lt.sha1_hash(bytes.fromhex(req["ih"]))
        node.ses.dht_get_peers(ih)
        a = node.wait(lambda a: isinstance(a, lt.dht_get_peers_reply_alert) and str(a.info_hash) == req["ih"],
                      req.get("timeout", 20))
        if a is None:
            return {"peers": []}
        return {"peers": ["%s:%d" % (p[0], p[1]) for p in a.peers()]}
    if cmd == "announce":
        # session.dht_announce is unusable from Python in libtorrent 2.0.8 (its
        # flags argument has no converter), so announce the way a client does:
        # add a torrent by infohash and force its DHT announce. The announced
        # port is the session's listen port.
        atp = lt.add_torrent_params()
        atp.info_hash = lt.sha1_hash(bytes.fromhex(req["ih"]))
        atp.save_path = node.tmpdir
        h = node.ses.add_torrent(atp)
        h.force_dht_announce()
        return {"ok": True, "port": node.ses.listen_port()}
    if cmd == "sample":
        host, port = parse_addr(req["addr"])
        node.ses.dht_sample_infohashes((host, port), lt.sha1_hash(bytes.fromhex(req["target"])))
        a = node.wait(lambda a: isinstance(a, lt.dht_sample_infohashes_alert), req.get("timeout", 10))
        if a is None:
            return {"error": "sample_infohashes: no reply alert"}
        return {"num": a.num_infohashes, "samples": [str(s) for s in a.samples]}
    if cmd == "live_nodes":
        node.ses.dht_live_nodes(lt.sha1_hash(node.nid))
        a = node.wait(lambda a: isinstance(a, lt.dht_live_nodes_alert), req.get("timeout", 10))
        if a is None:
            return {"error": "live_nodes: no alert"}
        return {"id": str(a.node_id), "nodes": [_node(n) for n in a.nodes]}
    if cmd == "seen":
        node.pump()
        return {"seen": node.seen, "announces": node.announces}
    if cmd == "quit":
        return None
    return {"error": "unknown command %r" % cmd}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--bench", action="store_true", help="raise rate limits, no packet log")
    ap.add_argument("--seeds", default="", help="comma-separated host:port to add as DHT nodes")
    args = ap.parse_args()

    node = Node(args.port, args.bench, log_packets=not args.bench)
    port = node.port()
    for s in filter(None, args.seeds.split(",")):
        node.ses.add_dht_node(parse_addr(s))
    node.nid = node.node_id()
    print(json.dumps({"ready": True, "port": port, "id": node.nid.hex()}), flush=True)

    lines = queue.Queue()

    def reader():
        for line in sys.stdin:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=reader, daemon=True).start()
    while True:
        try:
            line = lines.get(timeout=0.05)
        except queue.Empty:
            node.pump()
            continue
        if line is None:
            break
        line = line.strip()
        if not line:
            continue
        try:
            out = handle(node, json.loads(line))
        except Exception as e:  # report, keep serving
            out = {"error": "%s: %s" % (type(e).__name__, e)}
        if out is None:
            break
        print(json.dumps(out), flush=True)
    shutil.rmtree(node.tmpdir, ignore_errors=True)


if __name__ == "__main__":
    main()
