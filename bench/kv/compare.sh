#!/usr/bin/env bash
# Key-value store side by side: a 5-node dhtkit cluster (in memory, then
# with --data) and a 5-node OpenDHT dhtnode cluster (Debian package
# dhtnode, through its REST proxy), one after the other under the same
# load generator (bench/kv), in one run. Everything runs in a private
# network namespace with only loopback up, since dhtnode binds every
# interface. Needs root (unshare -n) and dhtnode (apt-get install -y
# dhtnode). Extra arguments go to kvload, e.g.
#
#   bench/kv/compare.sh -duration 10s -concurrency 64 -sizes 100,4096
#
# Takes about 12 × duration plus start-up (a minute with the defaults).
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
echo "dhtkit at $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' with uncommitted changes'), dhtnode $(dpkg-query -W -f '${Version}' dhtnode 2>/dev/null || echo '?'), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "command: bench/kv/compare.sh $*"
echo
exec unshare -n sh -c 'ip link set lo up && exec "$0" -dhtkit "$1" -dhtnode "$(command -v dhtnode)" "$@"' "$tmp/kvload" "$tmp/dhtkit" "$@"
