#!/bin/sh
# barrier-check.sh: how much the op tests rely on each barrier of kernels/. In a scratch copy of
# the tree, deletes each __syncthreads()/__syncwarp() in turn, rebuilds the emulated op tests
# that cover its file and runs them (tests/cudaemu: the shuffled schedule makes a missing
# barrier show as a wrong answer). Prints one line per barrier: "caught by TEST (N not ok, exit
# S)" or "NOT CAUGHT". About 15 minutes on 2 cores; not part of make test. Exit 0 when it ran.
set -eu
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar cf - Makefile lib kernels tests data/data.mk pipelines/*.mk | (cd "$work" && tar xf -)
cd "$work"
mkdir -p build && touch build/.deps-ok  # the packages are checked by the real tree's make
emu=build/release/cudaemu/tests
build() { make -s DEPS=0 "$@" > build/log 2>&1 || { cat build/log >&2; return 1; }; }
build $emu/test_ops $emu/test_sedd_ops $emu/test_train_ops
grep -n '__syncthreads();\|__syncwarp();' kernels/*.cu kernels/*.cuh | while IFS=: read -r file line text; do
    case $file in
    kernels/backward.cu | kernels/optim.cu) tests=test_train_ops ;;
    kernels/sedd_sampling.cu) tests=test_sedd_ops ;;
    *) tests="test_ops test_train_ops" ;;
    esac
    cp "$file" build/orig
    sed -i "${line}s/__syncthreads();\|__syncwarp();/\/* deleted *\//" "$file"
    verdict="NOT CAUGHT"
    # shellcheck disable=SC2046 # the test names are words
    if ! build $(for t in $tests; do echo "$emu/$t"; done); then
        verdict="build failed"
    else
        for t in $tests; do
            rc=0
            "$emu/$t" > build/out 2>&1 || rc=$?
            bad=$(grep -c '^not ok' build/out) || true
            if [ "$bad" -gt 0 ] || [ "$rc" -ne 0 ]; then
                verdict="caught by $t ($bad not ok, exit $rc)"
                break
            fi
        done
    fi
    echo "$file:$line: $(echo "$text" | sed 's/^ *//') -> $verdict"
    cp build/orig "$file"
done
