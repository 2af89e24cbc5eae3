#!/usr/bin/env bats
# The README is the user's manual: every ```sh block in it runs (in a scratch directory that
# sees data/ and tests/ of the tree) and exits 0. Blocks fenced ```shell are make targets that
# the test suite cannot run inside itself.

load helpers

@test "readme: every sh example runs" {
    cd "$BATS_TEST_TMPDIR"
    ln -s "$ROOT/data" data
    ln -s "$ROOT/tests" tests
    awk '/^```sh$/ {on=1; next} /^```/ {on=0} on' "$ROOT/README.md" > examples.sh
    [ -s examples.sh ]
    run -0 bash -e examples.sh
}
