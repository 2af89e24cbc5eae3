#!/usr/bin/env bats
# The CLI contract every tool keeps (README "Exit status"; STYLE 6.6), checked tool by tool:
# --help, unknown options, a terminal on stdin, a full disk, an early-closing reader.

load helpers

STREAM_TOOLS="detokenize stream-info diversity"
# every tool there is: bin/<tool>.c -> bin/<tool>
ALL_TOOLS=$(cd "$ROOT/bin" && ls *.c | sed 's/\.c$//')

setup() {
    printf 'Hello world.\nThe cat sat on the mat.\n' > "$BATS_TEST_TMPDIR/text"
    tokenize --lines --no-provenance < "$BATS_TEST_TMPDIR/text" > "$BATS_TEST_TMPDIR/stream"
}

@test "contract: --help prints Usage, exit codes and an example on stdout, exit 0" {
    for t in $ALL_TOOLS; do
        run -0 --separate-stderr "$t" --help
        [[ "$output" == Usage:\ $t* ]] || { echo "$t: $output"; false; }
        [[ "$output" == *"Exit status: 0 success, 1 data or I/O error, 2 usage error."* ]]
        [[ "$output" == *"Example: "* ]]
        [ -z "$stderr" ]
    done
}

@test "contract: an unknown option is exit 2 with usage on stderr and nothing on stdout" {
    for t in $ALL_TOOLS; do
        run -2 --separate-stderr "$t" --no-such-option
        [[ "$stderr" == *"Usage: $t"* ]] || { echo "$t: $stderr"; false; }
        [ -z "$output" ]
    done
}

@test "contract: --version names the tool, the commit and the CUDA build" {
    for t in $ALL_TOOLS; do
        run -0 "$t" --version
        [[ "$output" == "$t (dlmkit) "* ]]
        [[ "$output" == *"commit: "* && "$output" == *"cuda: "* ]]
    done
}

@test "contract: no input and stdin on a terminal prints usage to stderr, exit 2" {
    for t in tokenize $STREAM_TOOLS; do
        run -2 run_on_tty "$BIN/$t"
        [[ "$output" == *"Usage: $t"* ]] || { echo "$t: $output"; false; }
    done
}

@test "contract: writing to a full disk is exit 1 'writing output failed'" {
    run -1 --separate-stderr sh -c "tokenize < '$BATS_TEST_TMPDIR/text' > /dev/full"
    [[ "$stderr" == "tokenize: writing output failed: No space left on device" ]]
    for t in $STREAM_TOOLS; do
        run -1 --separate-stderr sh -c "$t < '$BATS_TEST_TMPDIR/stream' > /dev/full"
        [[ "$stderr" == "$t: writing output failed: No space left on device" ]] || { echo "$t: $stderr"; false; }
    done
}

@test "contract: a reader that closes early ends the pipeline quietly" {
    yes 'the quick brown fox jumps over the lazy dog' | head -n 200000 > "$BATS_TEST_TMPDIR/big"
    run -0 bash -c "tokenize --lines < '$BATS_TEST_TMPDIR/big' | head -c 1 | wc -c"
    [ "$output" -eq 1 ]
    tokenize --lines < "$BATS_TEST_TMPDIR/big" > "$BATS_TEST_TMPDIR/bigstream"
    run -0 bash -c "detokenize --jsonl < '$BATS_TEST_TMPDIR/bigstream' | head -c 1 | wc -c"
    [ "$output" -eq 1 ]
}

@test "contract: -o FILE is written atomically and leaves no temporary file" {
    run -0 tokenize --no-provenance -o "$BATS_TEST_TMPDIR/out.msgpack" "$BATS_TEST_TMPDIR/text"
    cmp <(tokenize --no-provenance < "$BATS_TEST_TMPDIR/text") "$BATS_TEST_TMPDIR/out.msgpack"
    [ -z "$(ls "$BATS_TEST_TMPDIR" | grep '\.tmp')" ]
    # a failing run leaves neither the output nor a temporary file behind
    run -1 tokenize -o "$BATS_TEST_TMPDIR/bad.msgpack" /dev/null
    [ ! -e "$BATS_TEST_TMPDIR/bad.msgpack" ]
}

@test "contract: -o naming a device writes to it and leaves it a device" {
    run -1 --separate-stderr tokenize -o /dev/full "$BATS_TEST_TMPDIR/text"
    [[ "$stderr" == "tokenize: writing output failed: No space left on device" ]]
    [ -c /dev/full ]
    run -0 tokenize -o /dev/null "$BATS_TEST_TMPDIR/text"
    [ -c /dev/null ]
}
