# make reproduce — every table and figure of "Promises, Outlooks and Challenges of Diffusion
# Language Modeling" (specs/paper.md), included by the top-level Makefile.
#
# Each stage is one file under $(RESULTS), written atomically (the tools' -o FILE, or FILE.tmp
# then mv), so an interrupted run resumes and redoes only the stages that did not finish; the
# stages run in parallel (make -j$(JOBS) inside, GNU parallel over $(SHARDS) shards within the
# sampling and scoring stages). Each stage's time goes to $(RESULTS)/logs/times.tsv.
#
# Default: the embedded models of data/models (GPT-2 n_embd 128 x 4 layers, SEDD hidden 128 x 4
# blocks, a GPT-2 192 x 6 judge; contexts of 128 tokens) on held-out Brown, at sizes that take
# about 10 minutes on 2 CPU cores. FULL=1: the paper's sizes. The variables (README, "make
# reproduce"):
#   MODELS=DIR    model directories [data/models]. When DIR holds gpt2-large/, it is read as the
#                 paper's set: gpt2, gpt2-medium, gpt2-large, sedd-small, sedd-medium (judge:
#                 gpt2-large); otherwise gpt2-small, sedd-small, gpt2-judge. Each name can be
#                 set alone (GPT2_SMALL=, SEDD_SMALL=, GPT2_MEDIUM=, SEDD_MEDIUM=, GPT2_LARGE=,
#                 JUDGE=); an empty name drops its rows.
#   DATA=DIR      the benchmark files as published (also BENCH_DIR=): lambada_test.jsonl,
#                 wiki.test.raw, ptb.test.txt, lm1b.test.txt (Table 1); lambada_test.jsonl,
#                 hellaswag_val.jsonl, piqa_valid.jsonl (+ piqa_valid-labels.lst),
#                 ARC-Easy-Test.jsonl, ARC-Challenge-Test.jsonl, winogrande_dev.jsonl (Table 2).
#                 Missing files leave their columns "not given".
#   FULL=1        the paper's sizes: 1024-token blocks and samples, 1000 samples and prompts,
#                 SEDD at 100/256/512/1024 (Table 3) and 128/256/512/1024 steps (Tables 5-6)
#   DEVICE=cpu|cuda, THREADS=N (per tool), JOBS=N (stages at once), SHARDS=N, SEED=N
#
# Napkin math (default, one core per stage): a SEDD step on one 100-token sequence costs 20-40 ms
# (much of it the sampler's 50258-way arithmetic per position), so Table 3's SEDD rows are 32
# samples x (4+8+16+32+64+16 steps + 6 denoiser calls) ~ 4700 steps ~ 150 s and Table 5's 40
# prompts x (9+33 calls) x (128 + 100 tokens) ~ 150 s; GPT-2 top-p/top-k decoding sorts 50257
# logits per token (~10 ms); the SEDD bound of 256 blocks x 4 times ~ 50 s. About 370
# CPU-seconds in all (measured): ~6 minutes on 2 cores. FULL=1 is ~3e18 FLOP (README).

RESULTS ?= results
MODELS  ?= data/models
FULL    ?= 0
DATA    ?= $(BENCH_DIR)
DEVICE  ?= cpu
JOBS    ?= 2
THREADS ?= 1
SHARDS  ?= 1
SEED    ?= 1

R := $(RESULTS)
# the benchmark-file rules name their input through a per-stem variable: $$(PPL_FILE_$$*)
.SECONDEXPANSION:

# ---- models ------------------------------------------------------------------------------
ifneq ($(wildcard $(MODELS)/gpt2-large/config.json),)
  GPT2_SMALL  ?= gpt2
  GPT2_MEDIUM ?= gpt2-medium
  GPT2_LARGE  ?= gpt2-large
  SEDD_SMALL  ?= sedd-small
  SEDD_MEDIUM ?= sedd-medium
  JUDGE       ?= gpt2-large
else
  GPT2_SMALL  ?= gpt2-small
  SEDD_SMALL  ?= sedd-small
  JUDGE       ?= gpt2-judge
endif
LM_MODELS   := $(strip $(GPT2_SMALL) $(SEDD_SMALL) $(GPT2_MEDIUM) $(SEDD_MEDIUM) $(GPT2_LARGE))
ALL_MODELS  := $(sort $(LM_MODELS) $(JUDGE))
# $(call kind,NAME): gpt2 or sedd, from the model's config.json (at recipe time)
kind = $(shell jq -r 'if .model_type == "gpt2" then "gpt2" else "sedd" end' $(MODELS)/$(1)/config.json)
model_files = $(MODELS)/$(1)/config.json $(MODELS)/$(1)/model.safetensors

# ---- sizes -------------------------------------------------------------------------------
ifeq ($(FULL),1)
  BLOCK       ?= 1024
  PPL_BLOCKS  ?= 0
  SEDD_K      ?= 32
  LAMBADA_N   ?= 0
  LM_K        ?= 32
  N_SAMPLES   ?= 1000
  SAMPLE_LEN  ?= 1024
  SEDD_STEPS  ?= 100 256 512 1024
  FP32_STEPS  ?= 1024
  PROMPTS     ?= 1000
  LONG_LEN    ?= 1024
  COND_STEPS  ?= 128 256 512 1024
  LAT_STEPS   ?= 8 16 32 64 128 256 512 1024
  LAT_LEN     ?= 1024
  LAT_BATCH   ?= 1 8
  LAT_REPEATS ?= 5
else
  BLOCK       ?= 128
  PPL_BLOCKS  ?= 256
  SEDD_K      ?= 4
  LAMBADA_N   ?= 100
  LM_K        ?= 8
  N_SAMPLES   ?= 32
  SAMPLE_LEN  ?= 100
  SEDD_STEPS  ?= 4 8 16 32 64
  FP32_STEPS  ?= 16
  PROMPTS     ?= 40
  LONG_LEN    ?= 128
  COND_STEPS  ?= 8 32
  LAT_STEPS   ?= 4 8 16 32 64
  LAT_LEN     ?= 100
  LAT_BATCH   ?= 1
  LAT_REPEATS ?= 3
endif
PROMPT_LEN  ?= 50
CONT_LEN    ?= 50
TOP_P       ?= 0.95
TOP_K       ?= 50
MAUVE_SEEDS ?= 1-5
LAT_THREADS ?= 0
# LAMBADA-style passages: whole sentences, MIN..MAX words (about 60-100 GPT-2 tokens)
LAMBADA_MIN ?= 50
LAMBADA_MAX ?= 85

COND_LEN := $(shell echo $$(($(PROMPT_LEN) + $(CONT_LEN))))
TOOLFLAGS := -j $(THREADS) --device $(DEVICE)
comma := ,
space := $(eval) $(eval)
commas = $(subst $(space),$(comma),$(strip $(1)))

# ---- benchmark files (DATA) --------------------------------------------------------------
PPL_SETS := brown
PPL_FILE_lambada  := lambada_test.jsonl
PPL_FILE_wikitext := wiki.test.raw
PPL_FILE_ptb      := ptb.test.txt
PPL_FILE_lm1b     := lm1b.test.txt
ifneq ($(DATA),)
  PPL_SETS += $(foreach d,lambada wikitext ptb lm1b,$(if $(wildcard $(DATA)/$(PPL_FILE_$(d))),$(d)))
endif
TASKS := brown_lambada
TASK_FILE_lambada_openai := lambada_test.jsonl
TASK_FILE_hellaswag      := hellaswag_val.jsonl
TASK_FILE_piqa           := piqa_valid.jsonl
TASK_FILE_arc_easy       := ARC-Easy-Test.jsonl
TASK_FILE_arc_challenge  := ARC-Challenge-Test.jsonl
TASK_FILE_winogrande     := winogrande_dev.jsonl
BENCH_TASKS := lambada_openai hellaswag piqa arc_easy arc_challenge winogrande
ifneq ($(DATA),)
  TASKS += $(foreach t,$(BENCH_TASKS),$(if $(wildcard $(DATA)/$(TASK_FILE_$(t))),$(t)))
endif
# the `dataset` reader of each task
TASK_SET_lambada_openai := lambada
TASK_SET_hellaswag      := hellaswag
TASK_SET_piqa           := piqa
TASK_SET_arc_easy       := arc
TASK_SET_arc_challenge  := arc
TASK_SET_winogrande     := winogrande

# ---- what every table is built from ------------------------------------------------------
GEN_GPT2_MODES := reg topp
GEN_SOURCES := data.brown \
    $(if $(GPT2_SMALL),$(addprefix $(GPT2_SMALL).,$(GEN_GPT2_MODES))) \
    $(if $(SEDD_SMALL),$(foreach k,$(SEDD_STEPS),$(SEDD_SMALL).k$(k)) \
                       $(foreach k,$(FP32_STEPS),$(SEDD_SMALL).k$(k)-fp32))
COND_GPT2_MODES := reg topp topk
# $(call cond_sources,GPT2,SEDD): the conditional runs of one model pair (Table 5 or 6)
cond_sources = $(if $(1),$(addprefix $(1).,$(COND_GPT2_MODES))) \
    $(if $(2),$(foreach k,$(COND_STEPS),$(2).k$(k).long $(2).k$(k).short))
COND5 := $(strip $(call cond_sources,$(GPT2_SMALL),$(SEDD_SMALL)))
COND6 := $(strip $(call cond_sources,$(GPT2_MEDIUM),$(SEDD_MEDIUM)))

T1_PARTS := $(foreach m,$(LM_MODELS),$(foreach d,$(PPL_SETS),$(R)/t1/$(m).$(d).json))
T2_PARTS := $(foreach m,$(LM_MODELS),$(foreach t,$(TASKS),$(R)/t2/$(m).$(t).json))
T3_PARTS := $(foreach s,$(GEN_SOURCES),$(R)/t3/$(s).genppl.json)
T4_PARTS := $(foreach s,$(GEN_SOURCES),$(R)/t3/$(s).div.json)
cond_parts = $(foreach s,$(1),$(R)/cond/$(s).mauve.json $(R)/cond/$(s).cont.json)
T5_PARTS := $(call cond_parts,$(COND5))
T6_PARTS := $(call cond_parts,$(COND6))
LAT_PARTS := $(if $(and $(GPT2_SMALL),$(SEDD_SMALL)),$(R)/fig/latency.json)

TABLES := $(foreach n,1 2 3 4 5 6,$(R)/table$(n).md)
FIGURES := $(if $(LAT_PARTS),$(R)/fig/latency.svg) $(R)/fig/genppl.svg

# ---- entry point -------------------------------------------------------------------------
# `reproduce` runs the stages in a sub-make with -j$(JOBS); the top-level Makefile has already
# built the tools and the data.
.PHONY: reproduce-stages reproduce-times
reproduce:
	@+$(MAKE) --no-print-directory -j$(JOBS) reproduce-stages
	@$(MAKE) --no-print-directory reproduce-times
	@echo "make reproduce: tables and figures in $(R)/ (index: $(R)/README.md)"

reproduce-stages: $(R)/README.md

reproduce-times:
	@test -f $(R)/logs/times.tsv && awk -F'\t' 'index($$1, "$(R)/") == 1 { t[$$1] += $$2 } END { for (k in t) printf "%9.1f s  %s\n", t[k], k }' \
	  $(R)/logs/times.tsv | sort -rn | head -n 25 || true

# Every stage's file is kept (none is an intermediate to delete), so a later run starts from it.
.SECONDARY:

# Stages run under pipelines/timed.sh: bash -e -o pipefail, and the time logged per target.
$(R)/%: SHELL = pipelines/timed.sh
$(R)/%: .SHELLFLAGS = $(R)/logs/times.tsv $@ -c

# A stage is redone when its inputs change: models, held-out data, the stages before it, and the
# settings it reads ($(R)/settings/NAME holds each one's value, rewritten only when it changes).
# Not when the tools are rebuilt (every commit relinks them; the numbers do not move): after a
# change to a tool, use a fresh RESULTS. The provenance (and so every table) follows the tools
# (TOOL_DEPS= drops even that: the tests run the stages on the tools as built, whatever their
# flavour, without make relinking them).
PIPE_TOOLS := bin/tokenize bin/stream-cut bin/gpt2-score bin/gpt2-sample bin/sedd-score \
              bin/sedd-sample bin/ppl bin/diversity bin/mauve-prep bin/mauve bin/lm-eval \
              bin/dataset bin/ckpt-info bin/latency
TOOL_DEPS ?= $(PIPE_TOOLS)
SHARD := pipelines/shard.sh

# $(call set,NAME ...): the stamp files of these settings, as prerequisites. When make reads this
# file for the stages, each stamp is rewritten if (and only if) its value changed; the rule only
# makes a missing one (a stage asked for directly).
set = $(addprefix $(R)/settings/,$(1))
STAMPED := BLOCK PPL_BLOCKS SEDD_K SEED LAMBADA_N LAMBADA_MIN LAMBADA_MAX LM_K N_SAMPLES SAMPLE_LEN \
           TOP_P TOP_K PROMPT_LEN CONT_LEN PROMPTS LONG_LEN MAUVE_SEEDS LAT_STEPS LAT_BATCH LAT_LEN \
           LAT_REPEATS LAT_THREADS DEVICE
ifneq ($(filter reproduce-stages,$(MAKECMDGOALS)),)
  $(shell mkdir -p $(R)/settings)
  $(foreach v,$(STAMPED),$(shell echo '$($(v))' | cmp -s - $(R)/settings/$(v) || echo '$($(v))' > $(R)/settings/$(v)))
endif
$(R)/settings/%: SHELL = /bin/sh
$(R)/settings/%: .SHELLFLAGS = -c
$(R)/settings/%:
	@mkdir -p $(@D)
	@echo '$($*)' > $@

# ---- provenance: models, code, settings --------------------------------------------------
SETTINGS := FULL=$(FULL) MODELS=$(MODELS) DATA=$(DATA) DEVICE=$(DEVICE) THREADS=$(THREADS) \
  SHARDS=$(SHARDS) SEED=$(SEED) BLOCK=$(BLOCK) PPL_BLOCKS=$(PPL_BLOCKS) SEDD_K=$(SEDD_K) \
  LAMBADA_N=$(LAMBADA_N) LAMBADA_MIN=$(LAMBADA_MIN) LAMBADA_MAX=$(LAMBADA_MAX) LM_K=$(LM_K) \
  N_SAMPLES=$(N_SAMPLES) SAMPLE_LEN=$(SAMPLE_LEN) SEDD_STEPS=$(call commas,$(SEDD_STEPS)) \
  FP32_STEPS=$(call commas,$(FP32_STEPS)) TOP_P=$(TOP_P) TOP_K=$(TOP_K) PROMPTS=$(PROMPTS) \
  PROMPT_LEN=$(PROMPT_LEN) CONT_LEN=$(CONT_LEN) LONG_LEN=$(LONG_LEN) \
  COND_STEPS=$(call commas,$(COND_STEPS)) MAUVE_SEEDS=$(MAUVE_SEEDS) \
  LAT_STEPS=$(call commas,$(LAT_STEPS)) LAT_LEN=$(LAT_LEN) LAT_BATCH=$(call commas,$(LAT_BATCH)) \
  LAT_REPEATS=$(LAT_REPEATS) LAT_THREADS=$(LAT_THREADS)
$(R)/provenance.json: $(foreach m,$(ALL_MODELS),$(call model_files,$(m))) $(TOOL_DEPS) \
                      data/brown/test.jsonl pipelines/provenance.jq
	@mkdir -p $(@D)
	for m in $(ALL_MODELS); do bin/ckpt-info --json $(MODELS)/$$m | jq -c --arg name $$m \
	  '{($$name): (. + {config_json: input})}' - $(MODELS)/$$m/config.json; done | jq -s add > $@.models
	jq -n --arg commit "$$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
	  --arg dirty "$$(git status --porcelain --untracked-files=no 2>/dev/null | wc -l)" \
	  --arg version "$$(bin/ppl --version | head -n 1)" --arg date "$$(date -u +%FT%TZ)" \
	  --arg settings '$(strip $(SETTINGS))' --arg test_sha "$$(sha256sum < data/brown/test.jsonl | cut -c1-16)" \
	  --slurpfile models $@.models -f pipelines/provenance.jq > $@.tmp
	rm -f $@.models && mv $@.tmp $@

# ---- held-out data -----------------------------------------------------------------------
# Table 1: PPL_BLOCKS blocks of BLOCK tokens spread over the test documents (every k-th block of
# the EOS-terminated, concatenated documents; 0 = all)
$(R)/data/ppl.brown.msgpack: data/brown/test.jsonl $(call set,BLOCK PPL_BLOCKS)
	@mkdir -p $(@D)
	bin/tokenize --jsonl --field text --append-eos --block $(BLOCK) -o $@.all $<
	n=$$(bin/stream-info $@.all | jq .records); k=1; \
	if [ $(PPL_BLOCKS) -gt 0 ] && [ $$n -gt $(PPL_BLOCKS) ]; then k=$$((n / $(PPL_BLOCKS))); fi; \
	bin/stream-cut --every $$k $(if $(filter 0,$(PPL_BLOCKS)),,-n $(PPL_BLOCKS)) -o $@ $@.all
	rm -f $@.all
$(R)/data/ppl.%.msgpack: $(DATA)/$$(PPL_FILE_$$*) $(call set,BLOCK PPL_BLOCKS)
	@mkdir -p $(@D)
	bin/dataset -f blocks --block $(BLOCK) $* $< -o $@.all
	n=$$(bin/stream-info $@.all | jq .records); k=1; \
	if [ $(PPL_BLOCKS) -gt 0 ] && [ $$n -gt $(PPL_BLOCKS) ]; then k=$$((n / $(PPL_BLOCKS))); fi; \
	bin/stream-cut --every $$k $(if $(filter 0,$(PPL_BLOCKS)),,-n $(PPL_BLOCKS)) -o $@ $@.all
	rm -f $@.all

# Tables 3-4, the data row: N_SAMPLES held-out blocks of SAMPLE_LEN tokens, spread out
$(R)/t3/data.brown.msgpack: data/brown/test.jsonl $(call set,SAMPLE_LEN N_SAMPLES)
	@mkdir -p $(@D)
	bin/tokenize --jsonl --field text --append-eos --block $(SAMPLE_LEN) -o $@.all $<
	n=$$(bin/stream-info $@.all | jq .records); k=$$((n / $(N_SAMPLES))); [ $$k -ge 1 ] || k=1; \
	bin/stream-cut --every $$k -n $(N_SAMPLES) -o $@ $@.all
	rm -f $@.all
# Tables 5-6: PROMPTS held-out blocks of PROMPT_LEN + CONT_LEN tokens (the references) and their
# first PROMPT_LEN tokens (the prompts)
$(R)/cond/ref.msgpack: data/brown/test.jsonl $(call set,PROMPT_LEN CONT_LEN PROMPTS)
	@mkdir -p $(@D)
	bin/tokenize --jsonl --field text --append-eos --block $(COND_LEN) -o $@.all $<
	n=$$(bin/stream-info $@.all | jq .records); k=$$((n / $(PROMPTS))); [ $$k -ge 1 ] || k=1; \
	bin/stream-cut --every $$k -n $(PROMPTS) -o $@ $@.all
	rm -f $@.all
$(R)/cond/prompts.msgpack: $(R)/cond/ref.msgpack $(call set,PROMPT_LEN)
	bin/stream-cut --tokens :$(PROMPT_LEN) -o $@ $<

# ---- Table 1: perplexity of held-out blocks ----------------------------------------------
# GPT-2: exact, each block on its own (its first token is context only); SEDD: the bound with
# SEDD_K stratified times per block, and its standard error
define t1_rule
$(R)/t1/$(1).%.scored.msgpack: $(R)/data/ppl.%.msgpack $(call model_files,$(1)) $(call set,SEDD_K SEED)
	@mkdir -p $$(@D)
	$(SHARD) $$@ $(SHARDS) stream $$< '$$(if $$(filter sedd,$$(call kind,$(1))),bin/sedd-score -K $(SEDD_K) --seed $(SEED),bin/gpt2-score) -m $(MODELS)/$(1) $(TOOLFLAGS)'
endef
$(foreach m,$(LM_MODELS),$(eval $(call t1_rule,$(m))))
# (a set too small for one block, as a tiny test file, gets a row without numbers)
$(R)/t1/%.json: $(R)/t1/%.scored.msgpack
	if [ "$$(bin/stream-info $< | jq .records)" -gt 0 ]; then bin/ppl -o $@ $<; else \
	  echo '{"records": 0, "tokens": 0, "ppl_exp_of_mean": null, "ppl_mean_per_seq": null, "note": "no complete block"}' > $@.tmp && mv $@.tmp $@; fi

# ---- Table 2: lm-eval ---------------------------------------------------------------------
$(R)/t2/brown-lambada.jsonl: data/brown/test.jsonl pipelines/brown-lambada.jq \
                            $(call set,LAMBADA_N LAMBADA_MIN LAMBADA_MAX)
	@mkdir -p $(@D)
	jq -c --argjson min $(LAMBADA_MIN) --argjson max $(LAMBADA_MAX) -f pipelines/brown-lambada.jq $< > $@.all
	awk -v n=$(LAMBADA_N) -v total=$$(wc -l < $@.all) 'BEGIN { k = n > 0 ? int(total / n) : 1; if (k < 1) k = 1 } \
	  (NR - 1) % k == 0 && (n == 0 || c < n) { print; c++ }' $@.all > $@.tmp
	rm -f $@.all && mv $@.tmp $@
$(R)/t2/brown_lambada.requests.jsonl: $(R)/t2/brown-lambada.jsonl
	bin/dataset -f requests --task lambada_openai lambada -o $@ $<
$(R)/t2/%.requests.jsonl: $(DATA)/$$(TASK_FILE_$$*)
	@mkdir -p $(@D)
	bin/dataset -f requests --task $* $(TASK_SET_$*) $(if $(filter piqa,$*),$(if $(wildcard $(DATA)/piqa_valid-labels.lst),--labels $(DATA)/piqa_valid-labels.lst)) -o $@ $<
define t2_rule
$(R)/t2/$(1).%.json: $(R)/t2/%.requests.jsonl $(call model_files,$(1)) $(call set,LM_K SEED)
	bin/lm-eval -m $(MODELS)/$(1) --task $$(if $$(filter brown_lambada,$$*),lambada_openai,$$*) \
	  $$(if $$(filter sedd,$$(call kind,$(1))),-K $(LM_K) --seed $(SEED)) -j $(THREADS) \
	  -o $$(@:.json=.docs.jsonl) $$< > $$@.tmp
	jq '. + {table_task: "$$*"}' $$@.tmp > $$@.tmp2 && rm $$@.tmp && mv $$@.tmp2 $$@
endef
$(foreach m,$(LM_MODELS),$(eval $(call t2_rule,$(m))))

# ---- Tables 3-4: unconditional samples, their generative perplexity and diversity ---------
gpt2_flags = $(if $(filter topp,$(1)),--top-p $(TOP_P))$(if $(filter topk,$(1)),--top-k $(TOP_K))
sedd_flags = --steps $(patsubst k%,%,$(subst -fp32,,$(1)))$(if $(findstring -fp32,$(1)), --sampling-precision 32)
define t3_gpt2
$(R)/t3/$(1).$(2).msgpack: $(call model_files,$(1)) $(call set,N_SAMPLES SAMPLE_LEN SEED TOP_P)
	@mkdir -p $$(@D)
	$(SHARD) $$@ $(SHARDS) count $(N_SAMPLES) 'bin/gpt2-sample -m $(MODELS)/$(1) -l $(SAMPLE_LEN) $(call gpt2_flags,$(2)) --seed $(SEED) $(TOOLFLAGS)'
endef
define t3_sedd
$(R)/t3/$(1).$(2).msgpack: $(call model_files,$(1)) $(call set,N_SAMPLES SAMPLE_LEN SEED TOP_P)
	@mkdir -p $$(@D)
	$(SHARD) $$@ $(SHARDS) count $(N_SAMPLES) 'bin/sedd-sample -m $(MODELS)/$(1) --length $(SAMPLE_LEN) $(call sedd_flags,$(2)) --seed $(SEED) $(TOOLFLAGS)'
endef
$(foreach g,$(GPT2_SMALL),$(foreach x,$(GEN_GPT2_MODES),$(eval $(call t3_gpt2,$(g),$(x)))))
$(foreach s,$(SEDD_SMALL),$(foreach k,$(SEDD_STEPS),$(eval $(call t3_sedd,$(s),k$(k)))) \
  $(foreach k,$(FP32_STEPS),$(eval $(call t3_sedd,$(s),k$(k)-fp32))))

# the judge's scores: every token after the first (SEDD's rule; no BOS)
$(R)/t3/%.judged.msgpack: $(R)/t3/%.msgpack $(call model_files,$(JUDGE))
	$(SHARD) $@ $(SHARDS) stream $< 'bin/gpt2-score -m $(MODELS)/$(JUDGE) $(TOOLFLAGS)'
$(R)/t3/%.genppl.json: $(R)/t3/%.judged.msgpack
	bin/ppl -o $@ $<
$(R)/t3/%.div.json: $(R)/t3/%.msgpack
	bin/diversity -o $@ $<

# ---- Tables 5-6: continuations of held-out prompts ---------------------------------------
# GPT-2 continues the PROMPT_LEN-token prompt by CONT_LEN tokens (gen long = gen short for an
# autoregressive model); SEDD samples LONG_LEN ("gen long", the first COND_LEN kept) or COND_LEN
# ("gen short") tokens with the prompt fixed.
define cond_gpt2
$(R)/cond/$(1).$(2).msgpack: $(R)/cond/prompts.msgpack $(call model_files,$(1)) $(call set,CONT_LEN TOP_P TOP_K SEED)
	$(SHARD) $$@ $(SHARDS) stream $$< 'bin/gpt2-sample -m $(MODELS)/$(1) --prompts - -l $(CONT_LEN) $(call gpt2_flags,$(2)) --seed $(SEED) $(TOOLFLAGS)'
endef
define cond_sedd
$(R)/cond/$(1).k$(2).$(3).msgpack: $(R)/cond/prompts.msgpack $(call model_files,$(1)) $(call set,LONG_LEN SEED)
	$(SHARD) $$@ $(SHARDS) stream $$< 'bin/sedd-sample -m $(MODELS)/$(1) --steps $(2) --length $(if $(filter long,$(3)),$(LONG_LEN),$(COND_LEN)) --seed $(SEED) $(TOOLFLAGS) -'
endef
$(foreach g,$(GPT2_SMALL) $(GPT2_MEDIUM),$(foreach x,$(COND_GPT2_MODES),$(eval $(call cond_gpt2,$(g),$(x)))))
$(foreach s,$(SEDD_SMALL) $(SEDD_MEDIUM),$(foreach k,$(COND_STEPS),$(foreach x,long short,$(eval $(call cond_sedd,$(s),$(k),$(x))))))

# MAUVE features: the first COND_LEN tokens (prompt + continuation) under the judge
$(R)/cond/%.feat.safetensors: $(R)/cond/%.msgpack $(call model_files,$(JUDGE))
	bin/mauve-prep -m $(MODELS)/$(JUDGE) --max-tokens $(COND_LEN) -j $(THREADS) -o $@ $<
$(R)/cond/%.mauve.json: $(R)/cond/%.feat.safetensors $(R)/cond/ref.feat.safetensors $(call set,MAUVE_SEEDS)
	bin/mauve -p $(R)/cond/ref.feat.safetensors -q $< --seeds $(MAUVE_SEEDS) -j $(THREADS) -o $@
# continuation perplexity: positions PROMPT_LEN .. PROMPT_LEN + CONT_LEN - 1 under the judge
$(R)/cond/%.cont.json: $(R)/cond/%.msgpack $(call model_files,$(JUDGE))
	bin/gpt2-score -m $(MODELS)/$(JUDGE) --from $(PROMPT_LEN) --first $(COND_LEN) $(TOOLFLAGS) $< | bin/ppl > $@.tmp
	mv $@.tmp $@

# ---- Figure 1: latency -------------------------------------------------------------------
# Runs after every other stage (order-only), alone on the machine as far as make is concerned.
$(R)/fig/latency.json: $(call model_files,$(GPT2_SMALL)) $(call model_files,$(SEDD_SMALL)) \
                       $(call set,LAT_STEPS LAT_BATCH LAT_LEN LAT_REPEATS LAT_THREADS DEVICE) \
                       | $(T1_PARTS) $(T2_PARTS) $(T3_PARTS) $(T4_PARTS) $(T5_PARTS) $(T6_PARTS)
	@mkdir -p $(@D)
	bin/latency --gpt2 $(MODELS)/$(GPT2_SMALL) --sedd $(MODELS)/$(SEDD_SMALL) --device $(DEVICE) \
	  --steps $(call commas,$(LAT_STEPS)) --batch $(call commas,$(LAT_BATCH)) -l $(LAT_LEN) \
	  -r $(LAT_REPEATS) -w 1 -j $(LAT_THREADS) -f json -o $@

$(R)/fig/latency.svg: $(R)/fig/latency.json pipelines/latency.gp
	jq -r '.rows[] | select(.model == "sedd") | [.batch, .steps, .median_s, .p10, .p90] | @tsv' $< > $(@D)/latency-sedd.tsv
	jq -r '(.rows | map(select(.model == "sedd") | .steps) | [min, max]) as $$span | .rows[] | select(.model == "gpt2") | . as $$r | $$span[] | [$$r.batch, ., $$r.median_s] | @tsv' \
	  $< > $(@D)/latency-gpt2.tsv
	gnuplot -e "dir='$(@D)'; batches='$(LAT_BATCH)'; title='$(GPT2_SMALL) (KV cache) vs $(SEDD_SMALL), $(LAT_LEN) tokens, $(DEVICE)'" pipelines/latency.gp
	mv $(@D)/latency.png.tmp $(@D)/latency.png && mv $(@D)/latency.svg.tmp $@

$(R)/fig/genppl.svg: $(R)/table3.json pipelines/genppl.gp
	@mkdir -p $(@D)
	jq -r '.rows[] | select(.steps != null and .precision == 64) | [.steps, .ppl] | @tsv' $< > $(@D)/genppl-sedd.tsv
	jq -r '.rows[] | select(.steps == null) | [(.label | gsub(" "; "\u00a0")), .ppl] | @tsv' $< > $(@D)/genppl-ref.tsv
	gnuplot -e "dir='$(@D)'; title='generative perplexity under $(JUDGE), $(N_SAMPLES) samples of $(SAMPLE_LEN) tokens'" pipelines/genppl.gp
	mv $(@D)/genppl.png.tmp $(@D)/genppl.png && mv $(@D)/genppl.svg.tmp $@

# ---- tables ------------------------------------------------------------------------------
TABLES_SH := pipelines/tables.sh
TABLE_ENV = R=$(R) PROV=$(R)/provenance.json
$(R)/table1.md: $(T1_PARTS) $(R)/provenance.json $(TABLES_SH)
	$(TABLE_ENV) $(TABLES_SH) table1 "$(LM_MODELS)" "$(PPL_SETS)"
$(R)/table2.md: $(T2_PARTS) $(R)/provenance.json $(TABLES_SH)
	$(TABLE_ENV) $(TABLES_SH) table2 "$(LM_MODELS)" "brown_lambada $(BENCH_TASKS)"
$(R)/table3.json: $(T3_PARTS) $(R)/provenance.json $(TABLES_SH)
	$(TABLE_ENV) $(TABLES_SH) table3 "$(GEN_SOURCES)"
$(R)/table3.md: $(R)/table3.json
	@true
$(R)/table4.md: $(T4_PARTS) $(R)/provenance.json $(TABLES_SH)
	$(TABLE_ENV) $(TABLES_SH) table4 "$(GEN_SOURCES)"
$(R)/table5.md: $(T5_PARTS) $(R)/provenance.json $(TABLES_SH)
	$(TABLE_ENV) $(TABLES_SH) table5 "$(COND5)" "small models ($(GPT2_SMALL), $(SEDD_SMALL))"
$(R)/table6.md: $(T6_PARTS) $(R)/provenance.json $(TABLES_SH)
	$(TABLE_ENV) $(TABLES_SH) table6 "$(COND6)" "medium models ($(or $(GPT2_MEDIUM),none), $(or $(SEDD_MEDIUM),none))"

$(R)/README.md: $(TABLES) $(FIGURES) $(TABLES_SH)
	$(TABLE_ENV) $(TABLES_SH) index "$(TABLES)" "$(FIGURES)"
