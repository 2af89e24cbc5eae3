#!/usr/bin/env bats
# make install: the tools and the GPT-2 vocabulary land under PREFIX, and the installed tools find
# the vocabulary there (<prefix>/share/dlmkit/gpt2) without the source tree; a CUDA build's
# plugin lands in <prefix>/lib/dlmkit, where the installed tools look for it first.

load helpers

@test "install: installed tools run from PREFIX with the installed vocabulary" {
    run -0 make -s -C "$ROOT" install PREFIX="$BATS_TEST_TMPDIR/p"
    [ -x "$BATS_TEST_TMPDIR/p/bin/tokenize" ]
    [ -f "$BATS_TEST_TMPDIR/p/share/dlmkit/gpt2/encoder.json" ]
    cd "$BATS_TEST_TMPDIR"
    run -0 bash -c "echo 'Hello world' | env -u DLMKIT_VOCAB p/bin/tokenize | p/bin/detokenize"
    [ "$output" = "Hello world" ]
}

@test "install: the CUDA plugin is installed and the installed tools load it from PREFIX" {
    tokenize --version | grep -q 'cuda: on' || skip "this build has no CUDA"
    p="$BATS_TEST_TMPDIR/p"
    run -0 make -s -C "$ROOT" install PREFIX="$p"
    [ -x "$p/lib/dlmkit/libdlmkit-cuda.so" ]
    run -0 env -u DLMKIT_CUDA_PLUGIN "$p/bin/tokenize" --version
    [[ "$output" == *"(CUDA runtime "* ]]
    # the installed copy is the one tried: a broken one there is reported by its path
    echo 'not a library' > "$p/lib/dlmkit/libdlmkit-cuda.so"
    run -0 env -u DLMKIT_CUDA_PLUGIN "$p/bin/tokenize" --version
    [[ "$output" == *"plugin not loadable: $p/lib/dlmkit/libdlmkit-cuda.so"* ]]
}
