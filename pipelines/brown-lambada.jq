# brown-lambada.jq: a LAMBADA-style last-word task from held-out Brown documents (jq -c -f,
# one {"id","text"} document per input line; one {"text","doc"} passage per output line).
# A document's words (the corpus's own tokenization: punctuation stands alone) are cut into
# sentences at ".", "?" and "!"; whole consecutive sentences are gathered until they hold at
# least $min words; the passage is kept when it has at most $max words and its last sentence
# ends in a word of letters only (at least 3), then a new passage starts. The kept passage drops
# the final punctuation mark, so its last word is the target, as in LAMBADA's text files.
def sentences:
  reduce (gsub("\n"; " ") | split(" ") | map(select(. != ""))[]) as $w
    ({cur: [], out: []};
     .cur += [$w] | if ($w == "." or $w == "?" or $w == "!") then .out += [.cur] | .cur = [] else . end)
  | .out;

.id as $doc
| reduce (.text | sentences[]) as $s ({cur: [], out: []};
    .cur += $s
    | if (.cur | length) >= $min then
        (if (.cur | length) <= $max and (.cur[-2] | test("^[A-Za-z]{3,}$"))
         then .out += [.cur[:-1] | join(" ")] else . end)
        | .cur = []
      else . end)
| .out[]
| {text: ., doc: $doc}
