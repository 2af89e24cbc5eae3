#!/usr/bin/env bats
# dataset: every published layout is read; detokenized text, rows, lm-eval requests and chunked
# blocks; malformed records are rejected naming file and line.

load helpers

D="$FIX/eval/formats"

@test "dataset: --help lists the datasets, formats and chunking options, exit 0" {
    run -0 --separate-stderr dataset --help
    [[ "$output" == "Usage: dataset"* && "$output" == *"--num-proc"* && "$output" == *"Example: "* ]]
}

@test "dataset: usage errors (exit 2): unknown dataset, missing file, bad format" {
    run -2 --separate-stderr dataset
    run -2 --separate-stderr dataset nosuch "$D/ptb/ptb.test.txt"
    [[ "$stderr" == *"unknown dataset"* ]]
    run -2 --separate-stderr dataset -f pdf ptb "$D/ptb/ptb.test.txt"
    run -2 --separate-stderr dataset hellaswag "$D/hellaswag/hellaswag_val.jsonl"
    run -2 --separate-stderr dataset -f requests piqa "$D/piqa/hf_validation_rows.jsonl"
}

@test "dataset: '-' with stdin on a terminal is a usage error; a pipe is read" {
    run -2 run_on_tty "$BIN/dataset ptb -"
    run -0 bash -c "dataset ptb - < '$D/ptb/ptb.test.txt' | wc -l"
    [ "$output" -ge 1 ]
}

@test "dataset: every layout in formats/ is read" {
    for spec in lambada:lambada_openai/lambada_test.jsonl webtext:webtext/webtext.test.jsonl \
        wikitext:wikitext/wiki.test.raw wikitext:wikitext/hf_test_rows.jsonl ptb:ptb/ptb.test.txt \
        ptb:ptb/hf_test_rows.jsonl lm1b:lm1b/news.en.heldout-00000-of-00050 lm1b:lm1b/hf_test_rows.jsonl; do
        run -0 dataset "${spec%%:*}" "$D/${spec#*:}"
        [ "${#lines[@]}" -ge 1 ] || { echo "$spec"; false; }
    done
    for spec in hellaswag:hellaswag/hellaswag_val.jsonl hellaswag:hellaswag/hf_validation_rows.jsonl \
        piqa:piqa/hf_validation_rows.jsonl arc:arc/ARC-Easy-Test.jsonl arc:arc/hf_arc_challenge_test_rows.jsonl \
        winogrande:winogrande/dev.jsonl winogrande:winogrande/hf_validation_rows.jsonl; do
        run -0 dataset -f rows "${spec%%:*}" "$D/${spec#*:}"
    done
    run -0 dataset -f rows --labels "$D/piqa/valid-labels.lst" piqa "$D/piqa/valid.jsonl"
    [ "$(dataset -f rows --labels "$D/piqa/valid-labels.lst" piqa "$D/piqa/valid.jsonl")" = \
      "$(dataset -f rows piqa "$D/piqa/hf_validation_rows.jsonl")" ]
}

@test "dataset: raw and HF layouts of PTB give the same detokenized text (byte-exact)" {
    [ "$(dataset ptb "$D/ptb/ptb.test.txt")" = "$(dataset ptb "$D/ptb/hf_test_rows.jsonl")" ]
    run -0 bash -c "dataset ptb '$D/ptb/hf_test_rows.jsonl' | head -1 | jq -r .text"
    [ "$output" = "the firm said it expects 1 1 growth in the current quarter" ]
}

@test "dataset: lm-eval requests match the fixture's strings byte for byte" {
    run -0 bash -c "dataset -f requests --task hellaswag hellaswag '$D/hellaswag/hf_validation_rows.jsonl' | jq -c .requests"
    want=$(jq -c .requests "$FIX/eval/lmeval/hellaswag_cases.jsonl")
    [ "$output" = "$want" ]
}

@test "dataset: blocks follow the reference chunking and record it" {
    run -0 bash -c "dataset -f blocks --block 16 --num-proc 2 --map-batch 3 wikitext '$D/wikitext/wiki.test.raw' | stream-info | jq -c '[.min_length, .max_length, .fields]'"
    [ "$output" = '[16,16,["chunking"]]' ]
}

@test "dataset: malformed records are rejected naming file and line (exit 1)" {
    printf '{"goal": "g", "sol1": "a", "sol2": "b", "label": 0}\n{"goal": "g", "sol1": "a"}\n' > "$BATS_TEST_TMPDIR/p.jsonl"
    run -1 --separate-stderr dataset -f rows piqa "$BATS_TEST_TMPDIR/p.jsonl"
    [[ "$stderr" == "dataset: $BATS_TEST_TMPDIR/p.jsonl:2: missing field 'sol2'" ]]
    printf '{"text": 5}\n' > "$BATS_TEST_TMPDIR/l.jsonl"
    run -1 --separate-stderr dataset lambada "$BATS_TEST_TMPDIR/l.jsonl"
    [[ "$stderr" == "dataset: $BATS_TEST_TMPDIR/l.jsonl:1: field 'text' has the wrong type" ]]
    printf '{"sentence": "a _ b", "option1": "x", "option2": "y", "answer": "3"}\n' > "$BATS_TEST_TMPDIR/w.jsonl"
    run -1 --separate-stderr dataset -f rows winogrande "$BATS_TEST_TMPDIR/w.jsonl"
    [[ "$stderr" == *"w.jsonl:1: bad label"* ]]
    head -2 "$D/piqa/valid.jsonl" > "$BATS_TEST_TMPDIR/v.jsonl"
    printf '0\n7\n' > "$BATS_TEST_TMPDIR/v.lst"
    run -1 --separate-stderr dataset -f rows --labels "$BATS_TEST_TMPDIR/v.lst" piqa "$BATS_TEST_TMPDIR/v.jsonl"
    [[ "$stderr" == *"v.lst:2: missing or bad label"* ]]
    printf '{"text": "ok"}\n{not json\n' > "$BATS_TEST_TMPDIR/j.jsonl"
    run -1 --separate-stderr dataset lambada "$BATS_TEST_TMPDIR/j.jsonl"
    [[ "$stderr" == *"j.jsonl:2: malformed JSON"* ]]
}
