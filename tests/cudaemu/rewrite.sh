#!/bin/sh
# rewrite.sh IN.cu OUT.cpp: a CUDA source as C++ for the emulator (cuda_runtime.h here): every
# launch `name<<<config>>>(args)` becomes `emu_launch("name", config)(name, args)` and every
# `extern __shared__ T s[];` a pointer to the running block's dynamic shared memory. A #line
# directive keeps messages and debuggers pointing at IN. Fails if a launch is left unconverted.
set -eu
[ $# -eq 2 ] || { echo "usage: rewrite.sh IN.cu OUT.cpp" >&2; exit 2; }
{
    printf '#line 1 "%s"\n' "$1"
    perl -0pe '
        s/\b([A-Za-z_]\w*(?:<[^<>;()]*>)?)\s*<<<(.*?)>>>\s*\(/emu_launch("$1", $2)($1, /gs;
        s/\bextern\s+__shared__\s+(\w+)\s+(\w+)\s*\[\s*\]\s*;/$1 *$2 = static_cast<$1 *>(emu_dynamic_shared());/g;
    ' "$1"
} > "$2.tmp"
if grep -n '<<<\|>>>' "$2.tmp" >&2; then
    echo "rewrite.sh: $1: a launch the emulator cannot convert (above)" >&2
    rm -f "$2.tmp"
    exit 1
fi
mv "$2.tmp" "$2"
