#!/bin/sh
# The Chord lab (../shared/seeds/003_*) reproduced: a ring of 100 nodes and
# 1000 items, lookups by fingers against walking successors, and how fairly
# the items are spread, before and after virtual nodes. Run from the
# repository's root:  sh examples/chordlab/run.sh
# It rewrites examples/chordlab/{routing,fairness}/ and the two tables.
set -eu
dir=examples/chordlab
go build -o /tmp/dhtkit-chordlab ./cmd/dhtkit
trap 'rm -f /tmp/dhtkit-chordlab' EXIT
common="--protocol chord --nodes 100 --lookups 1000 --keys 1000 --duration 5m --seed 1"
rm -rf "$dir/routing" "$dir/fairness"
/tmp/dhtkit-chordlab sim $common --routing fingers,linear --out "$dir/routing" | tee "$dir/routing.txt"
/tmp/dhtkit-chordlab sim $common --vnodes 1,4,16 --out "$dir/fairness" | tee "$dir/fairness.txt"
