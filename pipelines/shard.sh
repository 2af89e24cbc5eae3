#!/bin/sh
# shard.sh OUT SHARDS stream INPUT COMMAND
# shard.sh OUT SHARDS count N COMMAND
# Runs COMMAND (a shell command line that writes a token stream to stdout) over SHARDS shards
# with GNU parallel and concatenates the shards' streams into OUT, atomically (OUT.tmp, then
# renamed; a stream's headers agree, so `cat` of streams is a stream):
#   stream: shard i reads the i-th of SHARDS contiguous runs of records of the stream INPUT on
#           its stdin (stream-cut --skip --records); with SHARDS = 1, INPUT itself
#   count:  shard i gets "-n n_i --first-id f_i" appended, the N record ids cut into
#           contiguous ranges (the samplers key every draw by record id, so the result is the
#           same bytes for any SHARDS)
# Either way the records come out in the order of one unsharded run (MAUVE's k-means start
# depends on the order of the rows).
# Exit status: COMMAND's first failure, or 2 on bad usage.
set -eu
PATH=$(cd "$(dirname "$0")/../bin" && pwd):$PATH   # stream-cut
[ $# -eq 5 ] || { echo "usage: shard.sh OUT SHARDS stream|count INPUT|N COMMAND" >&2; exit 2; }
out=$1 shards=$2 mode=$3 arg=$4 cmd=$5
rm -f "$out".tmp "$out".part.*
case $mode in
stream)
    if [ "$shards" -eq 1 ]; then
        /bin/bash -o pipefail -c "$cmd" < "$arg" > "$out".tmp
    else
        per=$(( ($(stream-info "$arg" | jq .records) + shards - 1) / shards ))
        seq 0 $((shards - 1)) | parallel --halt now,fail=1 -j "$shards" \
            "stream-cut --skip \$(({} * $per)) -n $per '$arg' | $cmd > '$out'.part.{}"
    fi ;;
count)
    per=$(( (arg + shards - 1) / shards ))
    seq 0 $((shards - 1)) | while read -r i; do
        first=$((i * per)) n=$((arg - i * per))
        [ "$n" -gt "$per" ] && n=$per
        [ "$n" -gt 0 ] && echo "$i $first $n"
    done | parallel --halt now,fail=1 -j "$shards" --colsep ' ' \
        "$cmd -n {3} --first-id {2} > '$out'.part.{1}" ;;
*) echo "shard.sh: mode must be stream or count, not '$mode'" >&2; exit 2 ;;
esac
if [ ! -e "$out".tmp ]; then
    for i in $(seq 0 $((shards - 1))); do   # the shards in order, one stream
        if [ -e "$out".part.$i ]; then cat "$out".part.$i; fi
    done > "$out".tmp
    rm -f "$out".part.*
fi
mv "$out".tmp "$out"
