#!/bin/bash
# tables.sh TABLE ARGS...: builds one table of make reproduce from the tools' JSON outputs under
# $R (see pipelines/reproduce.mk), as $R/tableN.json (rows + provenance), $R/tableN.csv and
# $R/tableN.md, each written atomically; `index` writes $R/README.md from the tables and figures.
#   table1 "MODELS" "SETS"      perplexity (t1/MODEL.SET.json, ppl)
#   table2 "MODELS" "TASKS"     lm-eval (t2/MODEL.TASK.json)
#   table3 "SOURCES"            generative perplexity (t3/SOURCE.genppl.json)
#   table4 "SOURCES"            diversity (t3/SOURCE.div.json)
#   table5|table6 "RUNS" TITLE  MAUVE and continuation perplexity (cond/RUN.{mauve,cont}.json)
#   index "TABLES" "FIGURES"
# Environment: R (results directory), PROV (provenance.json). Exit status 1 on a missing input.
set -euo pipefail
: "${R:?R must name the results directory}" "${PROV:?PROV must name provenance.json}"
what=$1
shift

# the value of one setting of the run
setting() { jq -r --arg k "$1" '.settings[$k]' "$PROV"; }

# settings and models of the run, one Markdown paragraph
footer() {
    jq -r --arg keys "$1" '
      "_Provenance:_ " + .code.version + ", commit " + .code.commit[0:12]
      + (if .code.modified_files > 0 then " (+\(.code.modified_files) modified files)" else "" end)
      + "; held-out data: " + .data.heldout + "; models: "
      + ([.models | to_entries[] | "\(.key) (\(.value.kind), \(.value.parameters) parameters)"] | join(", "))
      + ". _Settings:_ " + ([.settings | to_entries[] | select(.key as $k | $keys | split(" ") | any(.[]; . == $k))
                            | "\(.key)=\(.value)"] | join(", ")) + "."' "$PROV"
}

# write NAME: moves NAME.{json,csv,md}.tmp into place (the .md last: it is make's target)
commit() {
    mv "$R/$1.json.tmp" "$R/$1.json"
    mv "$R/$1.csv.tmp" "$R/$1.csv"
    mv "$R/$1.md.tmp" "$R/$1.md"
}

# rows.json (a JSON array on stdin) + title -> NAME.json.tmp with provenance; NAME.csv.tmp
json_and_csv() {
    local name=$1 title=$2
    jq --arg title "$title" --slurpfile prov "$PROV" '{title: $title, rows: ., provenance: $prov[0]}' \
        > "$R/$name.json.tmp"
    jq -r 'select(.rows | length > 0) | (.rows[0] | keys_unsorted) as $k | ($k | @csv), (.rows[] | [.[$k[]]] | map(if type == "array" or type == "object" then tojson else . end) | @csv)' \
        "$R/$name.json.tmp" > "$R/$name.csv.tmp"
}

fmt='def f(d): if . == null then "–" else (. * pow(10; d) | round / pow(10; d) | tostring) end;
  def uniq_in_order: reduce .[] as $x ([]; if any(.[]; . == $x) then . else . + [$x] end);'

table1() {
    local models=$1 sets=$2 m s
    for m in $models; do
        for s in $sets; do
            jq -c --arg model "$m" --arg set "$s" --slurpfile prov "$PROV" \
              '{model: $model, kind: $prov[0].models[$model].kind, dataset: $set, blocks: .records,
                tokens_scored: .tokens, ppl_exp_of_mean: .ppl_exp_of_mean, ppl_mean_per_seq: .ppl_mean_per_seq,
                bound: ($prov[0].models[$model].kind == "sedd"), nll_per_token_stderr: .nll_per_token_stderr,
                ppl_ci95: .ppl_ci95}' "$R/t1/$m.$s.json"
        done
    done | jq -s . | json_and_csv table1 "Table 1: test perplexity (SEDD: upper bound)"
    local block nblocks
    block=$(jq -r .provenance.settings.BLOCK "$R/table1.json.tmp")
    nblocks=$(jq -r .provenance.settings.PPL_BLOCKS "$R/table1.json.tmp")
    {
        echo "## Table 1 — test perplexity (SEDD: upper bound)"
        echo
        echo "Held-out Brown (\`brown\`: $( [ "$nblocks" = 0 ] && echo all || echo "$nblocks spread-out") blocks of $block"
        echo "tokens from the 50 test documents, EOS after each document) and the benchmark sets when"
        echo "given (DATA=). GPT-2 scores each block exactly (its first token is context only); SEDD's"
        echo "number is the score-entropy bound ($(setting SEDD_K) times per block), ± its 95% interval."
        for order in exp_of_mean mean_per_seq; do
            echo
            if [ $order = exp_of_mean ]; then
                echo "exp(mean NLL per token), the paper's order (\`A.mean().exp()\`):"
            else
                echo "mean over blocks of exp(NLL per token), Lou et al.'s order (\`A.exp().mean()\`):"
            fi
            echo
            jq -r --arg order "$order" --arg sets "brown lambada wikitext ptb lm1b" "$fmt"'
              ($sets | split(" ")) as $cols
              | "| model | params | " + ($cols | map(if . == "wikitext" then "WikiText2/103" elif . == "lm1b" then "1BW" elif . == "lambada" then "LAMBADA" elif . == "ptb" then "PTB" else . end) | join(" | ")) + " |",
                "|---|---|" + ($cols | map("---|") | join("")),
                (. as $top | .rows as $rows | [$rows[].model] | uniq_in_order[] as $m | ($rows | map(select(.model == $m))) as $g
                 | "| \($m) | \($top.provenance.models[$m].parameters // "?") | "
                   + ($cols | map(. as $c | ($g | map(select(.dataset == $c)) | .[0]) as $r
                       | if $r == null then "not given"
                         elif $order == "exp_of_mean" then
                           (if $r.bound and $r.ppl_exp_of_mean != null then "≤" else "" end) + ($r.ppl_exp_of_mean | f(2))
                           + (if $r.ppl_ci95 then " [\($r.ppl_ci95[0] | f(1)), \($r.ppl_ci95[1] | f(1))]" else "" end)
                         else (if $r.bound and $r.ppl_mean_per_seq != null then "≤" else "" end) + ($r.ppl_mean_per_seq | f(2)) end) | join(" | ")) + " |")' \
              "$R/table1.json.tmp"
        done
        echo
        footer "BLOCK PPL_BLOCKS SEDD_K SEED DATA"
    } > "$R/table1.md.tmp"
    commit table1
}

table2() {
    local models=$1 tasks=$2 m t
    for m in $models; do
        for t in $tasks; do
            if [ -f "$R/t2/$m.$t.json" ]; then
                jq -c --arg model "$m" --arg task "$t" \
                  '{model: $model, task: $task, n: .n, acc: .acc, acc_stderr: .acc_stderr,
                    acc_norm: .acc_norm, perplexity: .perplexity, scoring: .scoring}' "$R/t2/$m.$t.json"
            else
                jq -nc --arg model "$m" --arg task "$t" '{model: $model, task: $task, n: null, acc: null,
                    acc_stderr: null, acc_norm: null, perplexity: null, scoring: "not given"}'
            fi
        done
    done | jq -s . | json_and_csv table2 "Table 2: lm-eval accuracy (%)"
    {
        echo "## Table 2 — zero-shot accuracy (%), lm-eval tasks"
        echo
        echo "\`brown_lambada\`: a LAMBADA-style last-word task built from the held-out Brown documents"
        echo "(pipelines/brown-lambada.jq: whole sentences, $(setting LAMBADA_MIN)..$(setting LAMBADA_MAX) words, the last"
        echo "word the target), scored as \`lambada_openai\`. GPT-2: greedy teacher-forced match;"
        echo "SEDD: all target tokens masked, parallel argmax at t = 1e-5 (a stricter notion; its"
        echo "likelihood is the conditional bound with $(setting LM_K) times). Multiple-choice tasks: acc"
        echo "(acc_norm in the JSON). The benchmark columns need DATA= (the files as published)."
        echo
        jq -r "$fmt"'
          .rows as $rows | ([$rows[].task] | uniq_in_order) as $cols
          | "| model | " + ($cols | join(" | ")) + " |",
            "|---|" + ($cols | map("---|") | join("")),
            ([$rows[].model] | uniq_in_order[] as $m
             | "| \($m) | " + ($cols | map(. as $c | ($rows | map(select(.model == $m and .task == $c)) | .[0]) as $r
                 | if $r == null or $r.acc == null then "not given"
                   else "\($r.acc * 100 | f(2)) ± \($r.acc_stderr * 100 | f(2)) (n=\($r.n))" end) | join(" | ")) + " |")' \
          "$R/table2.json.tmp"
        echo
        footer "LAMBADA_N LAMBADA_MIN LAMBADA_MAX LM_K SEED DATA"
    } > "$R/table2.md.tmp"
    commit table2
}

# source name -> label, steps and precision: data.brown, M.reg, M.topp, M.kK, M.kK-fp32
source_fields='def source_fields: . as $s | ($s | split(".")) as $p
  | if $p[0] == "data" then {label: "held-out Brown (data)", steps: null, precision: null}
    elif $p[1] == "reg" then {label: "\($p[0]) (reg)", steps: null, precision: null}
    elif $p[1] == "topp" then {label: "\($p[0]) (top-p \($topp))", steps: null, precision: null}
    elif $p[1] == "topk" then {label: "\($p[0]) (top-k \($topk))", steps: null, precision: null}
    else ($p[1] | ltrimstr("k") | split("-")) as $k
      | {label: "\($p[0]) (\($k[0]) steps\(if $k[1] then ", 32-bit" else "" end))",
         steps: ($k[0] | tonumber), precision: (if $k[1] then 32 else 64 end)} end;'

table3() {
    local sources=$1 s topp
    topp=$(jq -r .settings.TOP_P "$PROV")
    for s in $sources; do
        jq -c --arg s "$s" --arg topp "$topp" --arg topk "" "$source_fields"'
          ($s | source_fields) + {source: $s, samples: .records, tokens_scored: .tokens,
            ppl: .ppl_exp_of_mean, ppl_mean_per_seq: .ppl_mean_per_seq, ppl_sedd_rule: .ppl_sedd}' \
          "$R/t3/$s.genppl.json"
    done | jq -s . | json_and_csv table3 "Table 3: generative perplexity"
    {
        echo "## Table 3 — generative perplexity under the judge"
        echo
        echo "$(setting N_SAMPLES) unconditional samples of $(setting SAMPLE_LEN) tokens (the data row: as many held-out"
        echo "blocks), scored by the judge on every token after the first; exp(mean NLL per token)"
        echo "(the paper's order) and the mean of per-sample perplexities (SEDD's run_train.py rule)."
        echo
        echo "| source | PPL | mean per-sample PPL |"
        echo "|---|---|---|"
        jq -r "$fmt"'.rows[] | "| \(.label) | \(.ppl | f(2)) | \(.ppl_mean_per_seq | f(2)) |"' "$R/table3.json.tmp"
        echo
        footer "N_SAMPLES SAMPLE_LEN SEDD_STEPS FP32_STEPS TOP_P SEED"
    } > "$R/table3.md.tmp"
    commit table3
}

table4() {
    local sources=$1 s topp
    topp=$(jq -r .settings.TOP_P "$PROV")
    for s in $sources; do
        jq -c --arg s "$s" --arg topp "$topp" --arg topk "" "$source_fields"'
          ($s | source_fields) + {source: $s, samples: .records,
            unique_mean: .metrics.unique_unigram_fraction.mean, unique_std: .metrics.unique_unigram_fraction.std,
            entropy_mean: .metrics.unigram_entropy_nats.mean, entropy_std: .metrics.unigram_entropy_nats.std,
            rep_mean: .metrics.repetition_rate.mean, rep_std: .metrics.repetition_rate.std}' \
          "$R/t3/$s.div.json"
    done | jq -s . | json_and_csv table4 "Table 4: diversity"
    {
        echo "## Table 4 — diversity of the Table 3 sequences (mean ± std over sequences)"
        echo
        echo "| source | unique unigram fraction | unigram H (nats) | rep. rate (100) |"
        echo "|---|---|---|---|"
        jq -r "$fmt"'.rows[] | "| \(.label) | \(.unique_mean | f(3)) ± \(.unique_std | f(3)) | \(.entropy_mean | f(2)) ± \(.entropy_std | f(2)) | \(.rep_mean | f(3)) ± \(.rep_std | f(3)) |"' "$R/table4.json.tmp"
        echo
        footer "N_SAMPLES SAMPLE_LEN SEDD_STEPS FP32_STEPS TOP_P SEED"
    } > "$R/table4.md.tmp"
    commit table4
}

# table5|table6 "RUNS" TITLE: RUN = M.reg|M.topp|M.topk|M.kK.long|M.kK.short
table_cond() {
    local name=$1 runs=$2 title=$3 s topp topk
    topp=$(jq -r .settings.TOP_P "$PROV")
    topk=$(jq -r .settings.TOP_K "$PROV")
    for s in $runs; do
        jq -nc --arg s "$s" --arg topp "$topp" --arg topk "$topk" \
          --slurpfile mauve "$R/cond/$s.mauve.json" --slurpfile cont "$R/cond/$s.cont.json" "$source_fields"'
          ($s | split(".")) as $p
          | ($p[0:2] | join(".") | source_fields) + {run: $s, mode: ($p[2] // "both"),
             prompts: $mauve[0].n_q, mauve_mean: $mauve[0].mauve_mean, mauve_std: $mauve[0].mauve_std_population,
             mauve_seeds: ($mauve[0].runs | map(.seed)), cont_ppl: $cont[0].ppl_exp_of_mean}'
    done | jq -s . | json_and_csv "$name" "$title"
    {
        echo "## Table ${name#table} — conditional generation, $title"
        echo
        local p c
        p=$(setting PROMPT_LEN) c=$(setting CONT_LEN)
        echo "$(setting PROMPTS) held-out prompts of $p tokens continued by $c; MAUVE of prompt +"
        echo "continuation against the true text (judge features, mean ± std over seeds $(setting MAUVE_SEEDS))."
        echo "SEDD \"gen long\": $(setting LONG_LEN) tokens sampled with the prompt fixed, the first"
        echo "$((p + c)) kept; \"gen short\": exactly $((p + c)) sampled. GPT-2's continuation does not"
        echo "depend on later tokens, so both columns are one run. cont. PPL: the judge's perplexity of"
        echo "the $c continuation tokens (SEDD: from gen long)."
        echo
        if [ -z "$runs" ]; then
            echo "Not run: no such models under MODELS (set GPT2_MEDIUM= / SEDD_MEDIUM=)."
        else
            echo "| model | MAUVE (gen long) | MAUVE (gen short) | cont. PPL |"
            echo "|---|---|---|---|"
            jq -r "$fmt"'
              def m: "\(.mauve_mean | f(4)) ± \(.mauve_std | f(4))";
              .rows | group_by(.label) | sort_by(.[0].steps // -1, .[0].label)[] as $g
              | ($g | map(select(.mode == "long" or .mode == "both")) | .[0]) as $long
              | ($g | map(select(.mode == "short" or .mode == "both")) | .[0]) as $short
              | "| \($g[0].label) | \($long | m) | \($short | m) | \($long.cont_ppl | f(2)) |"' "$R/$name.json.tmp"
        fi
        echo
        footer "PROMPTS PROMPT_LEN CONT_LEN LONG_LEN COND_STEPS TOP_P TOP_K MAUVE_SEEDS SEED"
    } > "$R/$name.md.tmp"
    commit "$name"
}

index() {
    local tables=$1 figures=$2 t f
    {
        echo "# make reproduce — results"
        echo
        echo "Every table of \"Promises, Outlooks and Challenges of Diffusion Language Modeling\","
        echo "regenerated by \`make reproduce\` (pipelines/reproduce.mk) on the models and settings"
        echo "below; each table also as CSV and as JSON with full provenance (tableN.csv, tableN.json)."
        echo "Stage times: logs/times.tsv."
        echo
        footer "FULL MODELS DATA DEVICE THREADS SHARDS SEED"
        for t in $tables; do
            echo
            sed 's/^## /### /' "$t" | sed '/^_Provenance:_/d'
        done
        echo
        echo "### Figures"
        for f in $figures; do
            echo
            echo "![$(basename "$f" .svg)](${f#"$R"/})"
        done
    } > "$R/README.md.tmp"
    mv "$R/README.md.tmp" "$R/README.md"
}

case $what in
table1) table1 "$@" ;;
table2) table2 "$@" ;;
table3) table3 "$@" ;;
table4) table4 "$@" ;;
table5 | table6) table_cond "$what" "$@" ;;
index) index "$@" ;;
*) echo "tables.sh: unknown table '$what'" >&2; exit 2 ;;
esac
