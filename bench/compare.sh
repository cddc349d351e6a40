#!/usr/bin/env bash
# Side-by-side load benchmark: a bare Go UDP echo server, a dhtkit node,
# anacrolix/dht and libtorrent (Debian's python3-libtorrent), one at a time
# under the same loopback load generator, in one run. Prints a table with
# ratios against dhtkit and, with -update, rewrites the measured section of
# BENCHMARKS.md. Extra arguments go to `dhtload compare` (see -h), e.g.
#
#   bench/compare.sh -duration 10s -update BENCHMARKS.md
#
# Everything runs on 127.0.0.1. Takes about (1 + duration) × 12 seconds
# plus start-up; libtorrent is skipped, with a message, when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
bin="$(mktemp -d)/dhtload"
trap 'rm -rf "$(dirname "$bin")"' EXIT
(cd interop && go build -o "$bin" ./cmd/dhtload)
# Paths (-update) are relative to the repository root. The command line is
# recorded in BENCHMARKS.md.
DHTLOAD_CMDLINE="bench/compare.sh $*" "$bin" compare "$@"
