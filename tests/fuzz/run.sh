#!/bin/sh
# make fuzz: runs each libFuzzer target for RUNS executions from its seed corpus
# (tests/fuzz/corpus/<target>/, copied to build/ so the tree stays clean), prints the execution
# counts, and exits 1 if any target found a crash (its reproducer is left in build/fuzz/).
set -u
runs=$1; shift
status=0
for f in "$@"; do
    name=$(basename "$f")
    work="build/fuzz/corpus-$name"
    mkdir -p "$work"
    [ -d "tests/fuzz/corpus/$name" ] && cp -n tests/fuzz/corpus/"$name"/* "$work"/ 2>/dev/null
    echo "== $name: $runs runs"
    if ! "$f" -runs="$runs" -max_len=65536 -print_final_stats=1 -artifact_prefix=build/fuzz/ \
            "$work" > "build/fuzz/$name.log" 2>&1; then
        status=1
        grep -E 'ERROR|SUMMARY|artifact' "build/fuzz/$name.log"
    fi
    grep 'stat::number_of_executed_units' "build/fuzz/$name.log"
done
exit $status
