#!/usr/bin/env bash
# Key-value store side by side: a 5-node dhtkit cluster (in memory, then
# with --data), a 5-node OpenDHT dhtnode cluster (Debian package dhtnode,
# through its REST proxy) and, when etcd is installed (Debian package
# etcd-server), a 3-member etcd cluster (through its v3 JSON gateway), one
# after the other under the same load generator (bench/kv), in one run.
# Everything runs in a private network namespace with only loopback up,
# since dhtnode binds every interface. Needs root (unshare -n) and dhtnode
# (apt-get install -y dhtnode etcd-server). Extra arguments go to kvload,
# e.g.
#
#   bench/kv/compare.sh -duration 10s -concurrency 64 -sizes 100,4096
#   bench/kv/compare.sh -sizes 100 -runs 3     # three repeats, ratios per run
#
# Takes about 16 × duration plus start-up per run (a minute and a half
# with the defaults).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/usr/local/go/bin:$PATH"
if ! command -v dhtnode >/dev/null; then
	echo "compare.sh: dhtnode not found: apt-get install -y dhtnode" >&2
	exit 1
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/dhtkit" ./cmd/dhtkit
go build -o "$tmp/kvload" ./bench/kv
# The builds leave dirty pages (the binaries, Go's build cache): write them
# out now, or the kernel does it during the first run, on its CPU and
# ahead of the durable puts' fsyncs.
sync
echo "dhtkit at $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' with uncommitted changes'), dhtnode $(dpkg-query -W -f '${Version}' dhtnode 2>/dev/null || echo '?'), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "command: bench/kv/compare.sh $*"
echo
echo "etcd $(dpkg-query -W -f '${Version}' etcd-server 2>/dev/null || echo 'not installed'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
# Inside sh -c, $0 is kvload and $1 dhtkit: shift it off, so that "$@" is
# the caller's arguments alone (before, dhtkit's path came first and kvload
# stopped parsing flags there, ignoring every argument given).
exec unshare -n sh -c 'ip link set lo up && d="$1" && shift && exec "$0" -dhtkit "$d" -dhtnode "$(command -v dhtnode)" -etcd "$(command -v etcd || true)" "$@"' "$tmp/kvload" "$tmp/dhtkit" "$@"
