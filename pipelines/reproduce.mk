# make reproduce — the main job, included by the top-level Makefile.
#
# Today (models not yet landed) it runs the tokenizer over the Brown corpus and reports the
# corpus's token statistics; the GPT-2, SEDD and evaluation issues extend it to the paper's tables.
# Napkin math: 500 documents, 6.1 MB of text, 1.3 M tokens; well under a second on 2 cores.
# Every stage writes a named file (written atomically by the tools), so an interrupted run
# resumes from the last complete product. Outputs go to $(RESULTS).

RESULTS ?= results

$(RESULTS)/brown.msgpack: data/brown/brown.jsonl bin/tokenize
	@mkdir -p $(@D)
	bin/tokenize --jsonl --field text --append-eos --threads 2 -o $@ $<

$(RESULTS)/brown.stats.json: $(RESULTS)/brown.msgpack bin/stream-info
	bin/stream-info -o $@ $<

reproduce: $(RESULTS)/brown.stats.json
	@echo "Brown corpus under the GPT-2 tokenizer ($(RESULTS)/brown.stats.json):"
	@cat $<
