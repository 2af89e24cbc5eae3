#!/bin/sh
# bench_tokenize: GPT-2 BPE throughput on the Brown corpus (data/brown/brown.txt, `make data`):
# ours (lib/bpe through tests/bench/bench_bpe.c, 1 thread and 2 threads) beside tiktoken (npm
# `tiktoken`, its Rust core compiled to WebAssembly, in node), measured in the same run. The token
# counts must agree, and the id sequences too. Run from the repository root (make bench does).
# Environment: CC, CFLAGS (default -O2 -g), BENCH_REPEATS (best of, default 3), BENCH_TEXT.
set -eu
text=${BENCH_TEXT:-data/brown/brown.txt}
repeats=${BENCH_REPEATS:-3}
tiktoken_version=1.0.22
out=build/bench
cc=${CC:-cc}
[ -f "$text" ] || { echo "bench_tokenize: $text is missing; run \`make data\`" >&2; exit 1; }
mkdir -p "$out"

# Ours: the driver linked against the project's own library build (make bench builds it first;
# the archive contributes only the modules the tokenizer uses).
lib=build/release/libcore.a
[ -f "$lib" ] || { echo "bench_tokenize: $lib is missing; run \`make\`" >&2; exit 1; }
$cc -std=c11 -Wall -Wextra -Werror ${CFLAGS:--O2 -g} -D_GNU_SOURCE -Ilib -Ibuild \
    tests/bench/bench_bpe.c "$lib" -o "$out/bench_bpe" -lpcre2-8 -ljansson -lpthread

# The peer: tiktoken from npm, installed once into tests/bench/node_modules (gitignored).
if [ ! -f tests/bench/node_modules/tiktoken/package.json ]; then
    echo "bench_tokenize: installing tiktoken@$tiktoken_version into tests/bench/node_modules" >&2
    npm install --no-save --no-audit --no-fund --silent --prefix tests/bench \
        "tiktoken@$tiktoken_version" >&2 ||
        { echo "bench_tokenize: npm install tiktoken failed (offline?)" >&2; exit 1; }
fi

ours=$(BPE_IDS="$out/ids.ours" "$out/bench_bpe" "$text" 2 "$repeats")
theirs=$(TIKTOKEN_IDS="$out/ids.tiktoken" node tests/bench/tiktoken_bench.js "$text" "$repeats")

# The tool end to end (vocabulary loading, reading, writing the stream), best of $repeats.
tool_mbps() { # tool_mbps EXTRA_ARGS
    best=0
    for _ in $(seq "$repeats"); do
        t0=$(date +%s.%N)
        bin/tokenize --no-provenance $1 < "$text" > /dev/null
        t1=$(date +%s.%N)
        best=$(awk -v b="$best" -v t0="$t0" -v t1="$t1" -v n="$(wc -c < "$text")" \
            'BEGIN { m = n / 1e6 / (t1 - t0); print (m > b ? m : b) }')
    done
    echo "$best"
}
if [ -x bin/tokenize ]; then
    tool1=$(tool_mbps "")
    tool2=$(tool_mbps "-j 2")
fi

field() { # field NAME LINE
    echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"
}
o1=$(echo "$ours" | grep 'threads=1 ')
o2=$(echo "$ours" | grep 'threads=2 ')
bytes=$(field bytes "$o1")
t_ours=$(field tokens "$o1")
t_tik=$(field tokens "$theirs")
m1=$(field mbps "$o1")
m2=$(field mbps "$o2")
mt=$(field mbps "$theirs")

printf 'GPT-2 BPE on %s (%s bytes), best of %s, %s\n' "$text" "$bytes" "$repeats" "$(uname -m)"
printf '| %-28s | %9s | %9s | %11s |\n' "tokenizer" "MB/s" "tokens" "vs tiktoken"
printf '|%s|%s|%s|%s|\n' "------------------------------" "-----------" "-----------" "-------------"
awk -v a="$m1" -v b="$m2" -v c="$mt" -v t1="$t_ours" -v t2="$(field tokens "$o2")" -v t3="$t_tik" \
    -v v="$tiktoken_version" 'BEGIN {
    printf "| %-28s | %9.2f | %9d | %10.2fx |\n", "dlmkit lib/bpe, 1 thread", a, t1, a / c
    printf "| %-28s | %9.2f | %9d | %10.2fx |\n", "dlmkit lib/bpe, 2 threads", b, t2, b / c
    printf "| %-28s | %9.2f | %9d | %10.2fx |\n", "tiktoken " v " (wasm, node)", c, t3, 1
}'
if [ -n "${tool1:-}" ]; then
    awk -v a="$tool1" -v b="$tool2" -v c="$mt" -v t="$t_ours" 'BEGIN {
    printf "| %-28s | %9.2f | %9d | %10.2fx |\n", "bin/tokenize (whole run)", a, t, a / c
    printf "| %-28s | %9.2f | %9d | %10.2fx |\n", "bin/tokenize -j2 (whole run)", b, t, b / c
}'
fi

status=0
if [ "$t_ours" != "$t_tik" ]; then
    echo "bench_tokenize: token counts differ: ours $t_ours, tiktoken $t_tik" >&2
    status=1
elif ! cmp -s "$out/ids.ours" "$out/ids.tiktoken"; then
    echo "bench_tokenize: token ids differ from tiktoken's: $(cmp "$out/ids.ours" "$out/ids.tiktoken" 2>&1)" >&2
    status=1
else
    echo "token counts and ids agree with tiktoken ($t_ours tokens)"
fi
rm -f "$out/ids.ours" "$out/ids.tiktoken"
exit $status
