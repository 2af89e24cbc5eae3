# models.mk — `make models`: trains the three embedded models of data/models/ from scratch on the
# Brown training split (included by the top-level Makefile).
#
#   gpt2-small   GPT-2, 4 layers, width 128, 4 heads, context 128        (the baseline)
#   sedd-small   SEDD absorb/log-linear, 4 blocks, width 128, 4 heads, cond 64, length 128
#   gpt2-judge   GPT-2, 6 layers, width 192, 6 heads, context 128        (GPT-2 large's role)
#
# Data: data/brown/train.jsonl (every document but each 10th; data.mk), EOS after each document,
# cut into 128-token blocks; every 20th training document is kept apart for the validation loss.
# The committed weights are bf16. Bit-identical reproduction needs the same OpenBLAS kernel and
# thread count, so both are pinned here (Haswell = AVX2, present on every x86-64 machine we use).
# Napkin math: the 50257-way output projection is ~80% of a step; ~2k tokens/s for the small
# models on 2 cores, so MODEL_STEPS x 16 x 128 tokens each: see MODELS_TIME in the README.

MODELS_OUT   ?= data/models
GPT2_SMALL_STEPS ?= 500
GPT2_JUDGE_STEPS ?= 500
SEDD_SMALL_STEPS ?= 1500
EMBEDDED_MODELS  := gpt2-small gpt2-judge sedd-small
MODELS_WORK  := build/models
MODEL_ENV    := OPENBLAS_CORETYPE=Haswell OMP_WAIT_POLICY=passive DLM_NO_REEXEC=1
MODEL_TRAIN  := $(MODEL_ENV) bin/train -j 2 --context 128 --batch 16 --lr 1e-3 --warmup 50 \
                --cosine --lr-min 1e-4 --eval-every 50 --eval-batches 4 --dtype bf16 --seed 1 \
                --data $(MODELS_WORK)/train.msgpack --val $(MODELS_WORK)/val.msgpack

$(MODELS_WORK)/train.jsonl $(MODELS_WORK)/val.jsonl &: data/brown/train.jsonl
	@mkdir -p $(MODELS_WORK)
	awk 'NR % 20 == 0 { print > "$(MODELS_WORK)/val.jsonl.tmp"; next } \
	     { print > "$(MODELS_WORK)/train.jsonl.tmp" }' $<
	mv $(MODELS_WORK)/val.jsonl.tmp $(MODELS_WORK)/val.jsonl
	mv $(MODELS_WORK)/train.jsonl.tmp $(MODELS_WORK)/train.jsonl

$(MODELS_WORK)/%.msgpack: $(MODELS_WORK)/%.jsonl bin/tokenize
	bin/tokenize --jsonl --field text --append-eos --block 128 -o $@ $<

MODEL_DATA := $(MODELS_WORK)/train.msgpack $(MODELS_WORK)/val.msgpack

# Each model trains into build/models/NAME (resumable: an interrupted `make models` continues
# with --resume) and is then copied into data/models/NAME without its optimiser state.
define model_rule
$(MODELS_WORK)/$(1)/.done: $(MODEL_DATA) bin/train
	$(MODEL_TRAIN) $(2) $$$$(test -f $(MODELS_WORK)/$(1)/train_state.safetensors && echo --resume) \
	  -o $(MODELS_WORK)/$(1)
	touch $$@
endef
$(eval $(call model_rule,gpt2-small,--arch gpt2 --layers 4 --width 128 --heads 4 --steps $(GPT2_SMALL_STEPS)))
$(eval $(call model_rule,gpt2-judge,--arch gpt2 --layers 6 --width 192 --heads 6 --steps $(GPT2_JUDGE_STEPS)))
$(eval $(call model_rule,sedd-small,--arch sedd --layers 4 --width 128 --heads 4 --cond-dim 64 --ema 0.99 --steps $(SEDD_SMALL_STEPS)))

# `make models` retrains from scratch (the committed models are never rebuilt implicitly: nothing
# else depends on these rules). Trained weights that differ from the committed ones replace
# data/models/NAME: built in NAME.tmp, the old one moved to NAME.old, the new one moved in, then
# NAME.old removed, so a kill at any point leaves a whole model in one of the three. The same
# weights leave the committed files, and their times, alone (make reproduce would otherwise redo
# every stage).
# st_payload FILE: the tensor bytes of a safetensors file (after the 8-byte length and the JSON
# header, whose metadata names the commit), to tell whether a retrained model is the same model.
models: $(EMBEDDED_MODELS:%=$(MODELS_WORK)/%/.done)
	@st_payload() { n=$$(od -An -t u8 -N8 "$$1" | tr -d ' '); tail -c +$$((9 + n)) "$$1"; }; \
	for m in $(EMBEDDED_MODELS); do \
	  new=$(MODELS_WORK)/$$m/model.safetensors old=$(MODELS_OUT)/$$m/model.safetensors; \
	  if [ -f $$old ]; then \
	    st_payload $$old > $(MODELS_WORK)/$$m.old-payload; \
	    if st_payload $$new | cmp -s - $(MODELS_WORK)/$$m.old-payload; \
	    then same=1; echo "models: $$m: the same weights as the committed model, bit for bit (kept)"; \
	    else same=0; echo "models: $$m: weights DIFFER from the committed model (replaced)"; fi; \
	    rm -f $(MODELS_WORK)/$$m.old-payload; \
	    [ $$same = 1 ] && continue; \
	  fi; \
	  rm -rf $(MODELS_OUT)/$$m.tmp && mkdir -p $(MODELS_OUT)/$$m.tmp && \
	  cp $(MODELS_WORK)/$$m/config.json $(MODELS_WORK)/$$m/model.safetensors \
	     $(MODELS_WORK)/$$m/train.log.jsonl $(MODELS_OUT)/$$m.tmp/ && \
	  { [ ! -d $(MODELS_OUT)/$$m ] || { rm -rf $(MODELS_OUT)/$$m.old && mv $(MODELS_OUT)/$$m $(MODELS_OUT)/$$m.old; }; } && \
	  mv $(MODELS_OUT)/$$m.tmp $(MODELS_OUT)/$$m && rm -rf $(MODELS_OUT)/$$m.old || exit 1; \
	done
	@echo "models: $(EMBEDDED_MODELS) trained into $(MODELS_OUT)/"
