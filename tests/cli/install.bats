#!/usr/bin/env bats
# make install: the tools and the GPT-2 vocabulary land under PREFIX, and the installed tools find
# the vocabulary there (<prefix>/share/dlmkit/gpt2) without the source tree.

load helpers

@test "install: installed tools run from PREFIX with the installed vocabulary" {
    run -0 make -s -C "$ROOT" install PREFIX="$BATS_TEST_TMPDIR/p"
    [ -x "$BATS_TEST_TMPDIR/p/bin/tokenize" ]
    [ -f "$BATS_TEST_TMPDIR/p/share/dlmkit/gpt2/encoder.json" ]
    cd "$BATS_TEST_TMPDIR"
    run -0 bash -c "echo 'Hello world' | env -u DLMKIT_VOCAB p/bin/tokenize | p/bin/detokenize"
    [ "$output" = "Hello world" ]
}
