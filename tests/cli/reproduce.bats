#!/usr/bin/env bats
# make reproduce end to end at a tiny scale: the fixture models widened to GPT-2's vocabulary
# (fixturetool widen-vocab) stand in for gpt2-small, gpt2-judge and sedd-small; every table and
# figure is produced; a run killed midway resumes without redoing finished stages and ends with
# the same tables as an uninterrupted run.

load helpers

# the stages run on the tools as built (TOOL_DEPS=), whatever their flavour
tiny_make() {
    make -C "$ROOT" --no-print-directory -j2 reproduce-stages TOOL_DEPS= \
        MODELS="$MODELS" RESULTS="$1" THREADS=1 LAT_THREADS=1 \
        BLOCK=32 PPL_BLOCKS=4 SEDD_K=2 LAMBADA_N=4 LAMBADA_MIN=8 LAMBADA_MAX=20 LM_K=2 \
        N_SAMPLES=4 SAMPLE_LEN=24 SEDD_STEPS="2 4" FP32_STEPS=2 \
        PROMPTS=6 PROMPT_LEN=8 CONT_LEN=8 LONG_LEN=32 COND_STEPS=2 MAUVE_SEEDS=1-2 \
        LAT_STEPS="1 2" LAT_LEN=16 LAT_REPEATS=1 "${@:2}"
}

# every stage's file under $1 with its time stamp, sorted (logs and temporary files aside)
stage_files() {
    find "$1" -type f ! -path '*/logs/*' ! -name '*.tmp*' ! -name '*.all' ! -name '*.part.*' \
        ! -name '*.models' -printf '%p %T@\n' | sort
}

setup_file() {
    export MODELS="$BATS_FILE_TMPDIR/models"
    mkdir -p "$MODELS"
    fixturetool widen-vocab "$FIX/gpt2" "$MODELS/gpt2-small" 50257
    fixturetool widen-vocab "$FIX/gpt2" "$MODELS/gpt2-judge" 50257
    fixturetool widen-vocab "$FIX/sedd/tiny_absorb_loglinear" "$MODELS/sedd-small" 50257
    # one complete, uninterrupted run: the reference of the tests below
    tiny_make "$BATS_FILE_TMPDIR/full" > "$BATS_FILE_TMPDIR/full.log" 2>&1 ||
        { cat "$BATS_FILE_TMPDIR/full.log" >&2; return 1; }
}

@test "reproduce: every table and figure, with rows and provenance" {
    R="$BATS_FILE_TMPDIR/full"
    for n in 1 2 3 4 5 6; do
        [ -s "$R/table$n.md" ] && [ -s "$R/table$n.json" ]
    done
    [ -s "$R/fig/latency.svg" ] && [ -s "$R/fig/latency.png" ]
    [ -s "$R/fig/genppl.svg" ] && [ -s "$R/fig/genppl.png" ]
    # Table 1: GPT-2 and SEDD on the 4 held-out blocks; SEDD's is a bound with an interval
    run -0 jq -c '[.rows[] | [.model, .kind, .dataset, .blocks, .bound, (.ppl_ci95 | length)]]' "$R/table1.json"
    [ "$output" = '[["gpt2-small","gpt2","brown",4,false,0],["sedd-small","sedd","brown",4,true,2]]' ]
    # Table 3/4: data, GPT-2 reg and top-p, SEDD at 2 and 4 steps and 2 steps in 32-bit
    run -0 jq -c '[.rows[] | [.source, .samples]]' "$R/table3.json"
    [ "$output" = '[["data.brown",4],["gpt2-small.reg",4],["gpt2-small.topp",4],["sedd-small.k2",4],["sedd-small.k4",4],["sedd-small.k2-fp32",4]]' ]
    [ "$(jq '.rows | length' "$R/table4.json")" = 6 ]
    # Table 5: three GPT-2 runs and SEDD gen long + gen short, each on the 6 prompts, 2 seeds
    run -0 jq -c '[.rows[] | [.run, .prompts, (.mauve_seeds | length)]] | sort' "$R/table5.json"
    [ "$output" = '[["gpt2-small.reg",6,2],["gpt2-small.topk",6,2],["gpt2-small.topp",6,2],["sedd-small.k2.long",6,2],["sedd-small.k2.short",6,2]]' ]
    grep -q 'Not run' "$R/table6.md"
    # Table 2: the Brown last-word task for both models; the benchmarks are "not given"
    [ "$(jq -c '[.rows[] | select(.task == "brown_lambada") | .n]' "$R/table2.json")" = '[4,4]' ]
    grep -q 'not given' "$R/table2.md"
    # the provenance names the models and the settings; the index holds every table
    [ "$(jq -r '.provenance.models["sedd-small"].kind' "$R/table1.json")" = sedd ]
    [ "$(jq -r '.provenance.settings.N_SAMPLES' "$R/table3.json")" = 4 ]
    [ "$(grep -c '^### Table' "$R/README.md")" = 6 ]
    # the latency sweep: GPT-2 and SEDD at 1 and 2 steps
    [ "$(jq -c '[.rows[] | [.model, .steps]]' "$R/fig/latency.json")" = '[["gpt2",16],["sedd",1],["sedd",2]]' ]
    # up to date afterwards: a second run changes nothing
    stage_files "$R" > "$BATS_TEST_TMPDIR/once"
    run -0 tiny_make "$R"
    stage_files "$R" | diff "$BATS_TEST_TMPDIR/once" -
}

@test "reproduce: a run killed midway resumes, redoing only the unfinished stages" {
    R="$BATS_TEST_TMPDIR/r"
    # start a run and kill it (make and every tool) once some stages are done
    setsid bash -c "$(declare -f tiny_make); ROOT='$ROOT' MODELS='$MODELS' tiny_make '$R'" \
        > "$BATS_TEST_TMPDIR/first.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 600); do
        [ "$(ls "$R"/t3/*.msgpack 2>/dev/null | wc -l)" -ge 3 ] && break
        sleep 0.1
    done
    kill -TERM -- -"$pid"
    wait "$pid" || true
    [ ! -e "$R/README.md" ]
    # what was finished, with its time stamps
    stage_files "$R" > "$BATS_TEST_TMPDIR/before"
    [ -s "$BATS_TEST_TMPDIR/before" ]
    run -0 tiny_make "$R"
    # none of the finished files was made again: same names, same time stamps
    stage_files "$R" > "$BATS_TEST_TMPDIR/after"
    run -0 comm -23 "$BATS_TEST_TMPDIR/before" "$BATS_TEST_TMPDIR/after"
    [ -z "$output" ] || { echo "made again: $output"; false; }
    # and more was made
    [ "$(wc -l < "$BATS_TEST_TMPDIR/after")" -gt "$(wc -l < "$BATS_TEST_TMPDIR/before")" ]
    # and the tables are those of the uninterrupted run (the numbers do not depend on timing)
    for n in 1 2 3 4 5 6; do
        diff <(sed '/^_Provenance/d' "$BATS_FILE_TMPDIR/full/table$n.md") <(sed '/^_Provenance/d' "$R/table$n.md")
    done
}
