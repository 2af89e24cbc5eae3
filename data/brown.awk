# brown.awk: the Brown corpus, Form C ("word/tag" tokens), to plain text.
# Usage: awk -v txt=OUT.txt -v jsonl=OUT.jsonl -f data/brown.awk DIR/ca01 DIR/ca02 ...
# One input file is one document. A paragraph starts after a blank line or at a line indented
# with a tab; a line whose every tag ends in "-hl" is a headline and a paragraph of its own.
# Tags are stripped at the last "/" of each token ("//in" is the word "/"); the words keep
# the corpus's own tokenization, joined by single spaces. In OUT.txt a paragraph is one line
# and documents are separated by one blank line; OUT.jsonl holds {"id","text"} per document,
# paragraphs joined by "\n".

function end_para() {
    if (para != "") {
        doc = doc (doc == "" ? "" : "\n") para
        para = ""
    }
}

function json_string(s) {
    gsub(/\\/, "\\\\", s)
    gsub(/"/, "\\\"", s)
    gsub(/\t/, "\\t", s)
    gsub(/\n/, "\\n", s)
    return "\"" s "\""
}

function end_doc() {
    end_para()
    if (doc == "") return
    printf "%s%s\n", (ndocs > 0 ? "\n" : ""), doc > txt
    printf "{\"id\":%s,\"text\":%s}\n", json_string(id), json_string(doc) > jsonl
    ndocs++
    doc = ""
}

FNR == 1 { end_doc(); id = FILENAME; sub(/.*\//, "", id) }

/^[ \t]*$/ { end_para(); next }

{
    if ($0 ~ /^\t/) end_para()
    heading = 1
    line = ""
    for (i = 1; i <= NF; i++) {
        if ($i !~ /-hl$/) heading = 0
        w = $i
        sub(/\/[^\/]*$/, "", w)
        line = line (line == "" ? "" : " ") w
    }
    if (heading) end_para()
    para = para (para == "" ? "" : " ") line
    if (heading) end_para()
}

END { end_doc() }
