#!/usr/bin/env bats
# ppl: every aggregation rule named in its output (exp of mean, mean of exp, SEDD's batch rule,
# SDTT's, MDLM's first-EOS mask), the SEDD bound's error bar, and the fixture cases of the rules.

load helpers

GPT2="$FIX/gpt2"
ABSORB="$FIX/sedd/tiny_absorb_loglinear"

setup() {
    T="$BATS_TEST_TMPDIR"
}

# prints the value of jq expression $2 on JSON $1
jv() { echo "$1" | jq -r "$2"; }

@test "ppl --help names every rule and the options that pick them" {
    run -0 ppl --help
    for k in ppl_rule ppl_exp_of_mean ppl_mean_per_seq ppl_sedd ppl_sdtt ppl_mdlm ppl_ci95 \
             nll_per_token_stderr --batch --eos; do
        [[ "$output" == *"$k"* ]] || { echo "missing $k"; return 1; }
    done
    run -2 --separate-stderr ppl --batch 0
    run -2 --separate-stderr ppl --eos -1
}

@test "ppl: the rules on GPT-2 scores; SEDD batches drop the last partial one" {
    gpt2-sample -m "$GPT2" -n 5 -l 40 --seed 7 --no-provenance > "$T/s"
    gpt2-score -m "$GPT2" --no-provenance "$T/s" > "$T/g"
    run -0 ppl "$T/g"
    o="$output"
    [ "$(jv "$o" .ppl_rule)" = exp_of_mean ]
    [ "$(jv "$o" '.ppl == .ppl_exp_of_mean and .ppl == (.nll_per_token | exp)')" = true ]
    # Jensen: exp of the mean <= mean of exp; equal-length records make SDTT's rule the exp of mean
    [ "$(jv "$o" '.ppl <= .ppl_mean_per_seq')" = true ]
    [ "$(jv "$o" '((.ppl_sdtt - .ppl) | fabs) < 1e-12 * .ppl')" = true ]
    # default batch 32 > 5 records: no full batch, the rule is null and says why
    [ "$(jv "$o" '[.ppl_sedd, .sedd_batch, .sedd_batches, .sedd_dropped_records] | tostring')" = '[null,32,0,5]' ]
    # no logprobs, no nll_stderr: neither MDLM's rule nor an error bar
    [ "$(jv "$o" 'has("ppl_mdlm") or has("ppl_ci95") or has("nll_per_token_stderr")')" = false ]
    run -0 ppl --batch 1 "$T/g"
    [ "$(jv "$output" '.ppl_sedd == .ppl_mean_per_seq and .sedd_batches == 5')" = true ]
    run -0 ppl --batch 5 "$T/g"
    [ "$(jv "$output" '((.ppl_sedd - .ppl_mean_per_seq) | fabs) < 1e-12 * .ppl_sedd')" = true ]
    # --batch 2: the mean of the first four records' exp(nll/n), record 5 dropped
    run -0 ppl --batch 2 "$T/g"
    b2="$output"
    [ "$(jv "$b2" '[.sedd_batches, .sedd_dropped_records] | tostring')" = '[2,1]' ]
    run -0 detokenize --jsonl "$T/g"
    want=$(echo "$output" | jq -s '[.[:4][] | .nll / .n_scored | exp] | add / 4')
    [ "$(jq -n "($(jv "$b2" .ppl_sedd) - $want) | fabs < 1e-12 * $want")" = true ]
}

@test "ppl: MDLM's rule masks every EOS target but the first, from gpt2-score --logprobs" {
    gpt2-sample -m "$GPT2" -n 4 -l 48 --seed 3 --no-provenance > "$T/s"
    gpt2-score -m "$GPT2" --logprobs --no-provenance "$T/s" > "$T/g"
    detokenize --jsonl "$T/g" > "$T/g.jsonl"
    # take as "EOS" a token that occurs more than once in record 0, so the mask bites
    eos=$(jq -s '.[0].tokens | group_by(.) | map(select(length > 1)) | .[0][0]' "$T/g.jsonl")
    [ "$eos" != null ]
    run -0 ppl --eos "$eos" "$T/g"
    o="$output"
    want=$(jq -s --argjson e "$eos" '
        [ .[] | . as $r | ($r.tokens | index($e)) as $first
          | range(0; $r.n_scored) | . as $i | ($r.score_from + $i) as $p
          | select($r.tokens[$p] != $e or $p == $first) | -$r.logprobs[$i] ]
        | [(add / length | exp), length]' "$T/g.jsonl")
    [ "$(jv "$o" .mdlm_tokens)" = "$(echo "$want" | jq '.[1]')" ]
    [ "$(jv "$o" .mdlm_tokens)" -lt "$(jv "$o" .tokens)" ]
    [ "$(jq -n "($(jv "$o" .ppl_mdlm) - $(echo "$want" | jq '.[0]')) | fabs < 1e-6 * $(jv "$o" .ppl_mdlm)")" = true ]   # detokenize prints 7 digits
    # with an id that never occurs every target counts: MDLM's rule is the exp of mean (float32 logprobs)
    run -0 ppl --eos 999999 "$T/g"
    [ "$(jv "$output" '.mdlm_tokens == .tokens and ((.ppl_mdlm - .ppl) | fabs) < 1e-5 * .ppl')" = true ]
}

@test "ppl: SEDD bounds with nll_stderr get an error bar; K = 1 gets none" {
    printf '{"text":"a b c d e f g h"}\n{"text":"a b c d e f"}\n' | tokenize --jsonl > "$T/x"
    sedd-score -m "$ABSORB" -K 4 "$T/x" > "$T/b4"
    run -0 ppl "$T/b4"
    o="$output"
    se=$(detokenize --jsonl "$T/b4" | jq -s '([.[].nll_stderr | . * .] | add | sqrt) / ([.[].n_scored] | add)')
    [ "$(jq -n "($(jv "$o" .nll_per_token_stderr) - $se) | fabs < 1e-12 * $se")" = true ]
    [ "$(jv "$o" '.ppl_ci95[0] < .ppl and .ppl < .ppl_ci95[1]')" = true ]
    [ "$(jv "$o" '((.ppl_ci95[0] | log) - (.nll_per_token - 1.96 * .nll_per_token_stderr) | fabs) < 1e-9')" = true ]
    sedd-score -m "$ABSORB" -K 1 "$T/x" > "$T/b1"
    run -0 ppl "$T/b1"
    [ "$(jv "$output" 'has("ppl_ci95") or has("nll_per_token_stderr")')" = false ]
}

@test "fixture-check eval-ppl-agg: every rule passes; a changed value fails" {
    run -0 fixture-check --kinds eval-ppl-agg "$FIX/eval"
    [[ "${lines[-1]}" == "10 passed, 0 failed, 0 unsupported, "* ]]
    for c in genppl:mdlm_target_mask genppl:mdlm_token_weighted_exp_of_mean \
             genppl:sdtt_exp_of_mean_of_sequence_means bound:order_C_mean_over_batches_of_exp_of_batch_mean; do
        [[ "$output" == *"PASS  eval-ppl-agg  $c "* ]] || { echo "missing $c"; return 1; }
    done
    mkdir -p "$T/e/ppl"
    cp -r "$FIX/eval/diversity" "$T/e/"   # what makes the directory an eval set
    cp "$FIX/eval/ppl/bound_aggregation.json" "$T/e/ppl/"
    sed 's/"sedd_mean_of_batch_mean_of_exp": 20.235004722968643/"sedd_mean_of_batch_mean_of_exp": 20.2350047230/' \
        "$FIX/eval/ppl/genppl_aggregation.json" > "$T/e/ppl/genppl_aggregation.json"
    run -1 fixture-check --kinds eval-ppl-agg "$T/e"
    [[ "$output" == *"FAIL  eval-ppl-agg  genppl:sedd_mean_of_batch_mean_of_exp "* ]]
    [[ "$output" == *"PASS  eval-ppl-agg  bound:order_A_exp_of_mean "* ]]
}
