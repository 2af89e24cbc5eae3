#!/bin/sh
# make fuzz: runs each libFuzzer target for RUNS executions from its seed corpus
# (tests/fuzz/corpus/<target>/, copied to build/ so the tree stays clean) and prints the counts.
set -eu
runs=$1; shift
for f in "$@"; do
    name=$(basename "$f")
    work="build/fuzz/corpus-$name"
    mkdir -p "$work"
    [ -d "tests/fuzz/corpus/$name" ] && cp -n tests/fuzz/corpus/"$name"/* "$work"/ 2>/dev/null || true
    echo "== $name: $runs runs"
    "$f" -runs="$runs" -max_len=65536 -print_final_stats=1 "$work" 2>&1 | grep -E 'stat::number_of_executed_units|ERROR|SUMMARY|crash-' || true
done
