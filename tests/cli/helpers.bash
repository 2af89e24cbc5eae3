# Shared setup of the bats tests: tools from bin/, fixtures from tests/fixtures.
ROOT="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"
BIN="$ROOT/bin"
FIX="$ROOT/tests/fixtures"
export PATH="$BIN:$PATH"
bats_require_minimum_version 1.5.0
# The test-support program (tests/support/fixturetool.c), built by `make unit-tests` into the
# build flavour `make test` passes as $BUILD.
FIXTURETOOL="${FIXTURETOOL:-$ROOT/${BUILD:-build/release}/tests/support/fixturetool}"

# fixturetool ARGS...: runs $FIXTURETOOL, or fails saying how to build it.
fixturetool() {
    [ -x "$FIXTURETOOL" ] || { echo "$FIXTURETOOL missing: run make unit-tests" >&2; return 1; }
    "$FIXTURETOOL" "$@"
}

# Runs CMD under a pseudo-terminal (stdin is a tty), for the "no input on a tty" contract.
run_on_tty() {
    script -qec "$*" /dev/null
}
