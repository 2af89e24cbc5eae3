#!/bin/sh
# make bench: runs every tests/bench/bench_*.sh; each prints our figure beside a peer's,
# measured in the same run (ratios, not absolute seconds).
set -eu
sh tests/bench/deps.sh
status=0
for b in tests/bench/bench_*.sh; do
    [ -e "$b" ] || continue
    echo "== $b"
    sh "$b" || status=1
done
exit $status
