#!/bin/sh
# Runs the C unit tests (TAP) given as arguments, then the bats tests of tests/cli, and ends with
# one line "N passed, N failed, N skipped". Exit status 1 if anything failed.
# A test binary that exits non-zero without reporting a failing check counts as one failure,
# except exit 77 with an "ok ... # skip" line: the documented "skipped" status (no GPU).
# The CUDA op tests (tests/kernels/) run a second time with --cpu-self (the CPU backend against
# itself), which checks their harness, shapes and buffer sizes on a machine without a GPU; those
# lines are labelled "[cpu-self]" so that no CUDA test reads as passed where none ran. The same
# op tests linked with the CUDA emulator (BUILD/cudaemu/tests/, see tests/cudaemu) run the real
# kernels on the CPU; their lines are labelled "[cuda-emu]", for the same reason.
set -u
log=$(mktemp)
trap 'rm -f "$log"' EXIT
failed_bins=0
run_one() { # test binary [argument]
    echo "# $*"
    "$@" > "$log.out" 2>&1
    rc=$?
    case "$*" in
        *--cpu-self) label=cpu-self ;;
        */cudaemu/tests/*) label=cuda-emu ;;
        *) label= ;;
    esac
    [ -z "$label" ] || sed -i "s/^\(\(not \)\{0,1\}ok [0-9]* - \)/\1[$label] /" "$log.out"
    if [ "$rc" -ne 0 ] && ! { [ "$rc" -eq 77 ] && grep -q '^ok .*# skip' "$log.out"; }; then
        grep -q '^not ok' "$log.out" || { failed_bins=$((failed_bins + 1)); echo "not ok - $* exited non-zero"; }
    fi
    cat "$log.out"
    cat "$log.out" >> "$log"
}
for t in "$@"; do
    run_one "$t"
    case "$t" in */tests/kernels/*) run_one "$t" --cpu-self ;; esac
done
rm -f "$log.out"
if ls tests/cli/*.bats >/dev/null 2>&1; then
    echo "# bats tests/cli"
    bats --tap tests/cli | tee -a "$log"
fi
pass=$(grep -c '^ok .*# skip' "$log")
skip=$pass
pass=$(($(grep -c '^ok ' "$log") - skip))
fail=$(($(grep -c '^not ok' "$log") + failed_bins))
grep '^not ok' "$log" | sed 's/^/FAILED: /'
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
