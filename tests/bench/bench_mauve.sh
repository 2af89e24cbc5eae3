#!/bin/sh
# mauve on synthetic GPT-2-large-sized features (N per side x 1280; the paper uses 1000 per side),
# beside the reference pipeline: mauve-text's compute_mauve when it is installed, else
# tests/bench/mauve_ref.py (the same steps on numpy, scikit-learn PCA and faiss.Kmeans; Debian:
# python3-faiss python3-sklearn). Prints seconds, the values and the ratio.
set -eu
N=${MAUVE_BENCH_N:-5000}
DIM=1280
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
${CC:-cc} -O2 -o "$T/gen" tests/bench/mauve_gen.c -lm
"$T/gen" "$N" $DIM 0 1 > "$T/p.f32"
"$T/gen" "$N" $DIM 0.05 2 > "$T/q.f32"
start=$(date +%s.%N)
bin/mauve -p "$T/p.f32" -q "$T/q.f32" --dim $DIM > "$T/ours.json"
ours=$(echo "$(date +%s.%N) - $start" | bc)
printf '%-28s %10s %s\n' "mauve ${N}x${DIM} (dlmkit)" "${ours}s" "$(jq -c '{mauve, num_buckets, pca_components}' "$T/ours.json")"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
if "$PY" -c 'import mauve, faiss, sklearn' 2>/dev/null; then
    ref_cmd="import sys, numpy as np, mauve; d=int(sys.argv[3]); p=np.fromfile(sys.argv[1], dtype=np.float32).reshape(-1,d); q=np.fromfile(sys.argv[2], dtype=np.float32).reshape(-1,d); print(mauve.compute_mauve(p_features=p, q_features=q, verbose=False).mauve)"
    name="mauve-text compute_mauve"
elif "$PY" -c 'import faiss, sklearn' 2>/dev/null; then
    ref_cmd=$(cat tests/bench/mauve_ref.py)
    name="faiss+sklearn pipeline"
else
    echo "reference: skipped (no python3 with faiss and scikit-learn: apt-get install python3-faiss python3-sklearn)"
    exit 0
fi
start=$(date +%s.%N)
OMP_NUM_THREADS=$(nproc) "$PY" -c "$ref_cmd" "$T/p.f32" "$T/q.f32" $DIM > "$T/ref.txt"
ref=$(echo "$(date +%s.%N) - $start" | bc)
printf '%-28s %10s %s\n' "$name" "${ref}s" "$(cat "$T/ref.txt")"
printf 'ratio reference/dlmkit: %s\n' "$(echo "scale=2; $ref / $ours" | bc)"
