# Shared setup of the bats tests: tools from bin/, fixtures from tests/fixtures.
ROOT="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"
BIN="$ROOT/bin"
FIX="$ROOT/tests/fixtures"
export PATH="$BIN:$PATH"
bats_require_minimum_version 1.5.0

# Runs CMD under a pseudo-terminal (stdin is a tty), for the "no input on a tty" contract.
run_on_tty() {
    script -qec "$*" /dev/null
}
