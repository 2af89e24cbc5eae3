# dlmkit — the one build entry point.
#   make                 tools in bin/, data they need (data/), missing Debian packages installed
#   make test            C unit tests + bats tests; ends with "N passed, N failed"
#   make test ASAN=1     the same under AddressSanitizer + UBSan
#   make bench           benchmarks beside their peers (ratios)
#   make fuzz            libFuzzer targets (clang); FUZZ_RUNS=N executions each
#   make fixture-check DIR=../shared/fixtures/tokenizer
#   make models          retrain the embedded models of data/models/ from scratch (~30 min)
#   make install PREFIX=/usr/local, make clean
# CUDA: built when nvcc is found (CUDA=0 turns it off, CUDA=1 insists); CUDA_ARCH overrides targets.

PREFIX    ?= /usr/local
CFLAGS    ?= -O2 -g
WARNINGS  := -std=c11 -Wall -Wextra -Werror
CPPFLAGS  += -D_GNU_SOURCE -Ilib -Ibuild
DEPFLAGS  := -MMD -MP
LDLIBS    := -lmsgpackc -lpcre2-8 -ljansson -lopenblas -lm -lpthread -ldl
# a tool records only the shared libraries it calls: those without a model skip OpenBLAS, whose
# load starts a thread pool that spins for the first ~0.1 s of every process
LDFLAGS   += -Wl,--as-needed
OMPFLAGS  := -fopenmp

ifeq ($(ASAN),1)
  BUILD   := build/asan
  CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
  LDFLAGS += -fsanitize=address,undefined
else
  BUILD   := build/release
endif

ALL_CFLAGS = $(WARNINGS) $(CFLAGS) $(OMPFLAGS)

# ---- CUDA switch -------------------------------------------------------------------------
NVCC      ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDA_ARCH ?= 80 90
ifeq ($(CUDA),0)
  NVCC :=
endif
ifeq ($(CUDA),1)
  ifeq ($(NVCC),)
    $(error CUDA=1 but nvcc was not found)
  endif
endif
ifneq ($(NVCC),)
  # the toolkit's root as nvcc itself reports it: nvcc may be a wrapper script elsewhere on PATH
  CUDA_ROOT   := $(abspath $(shell $(NVCC) -dryrun -x cu -c /dev/null 2>&1 | sed -n 's/^#\$$ TOP=//p'))
  CUDA_LIBDIR := $(patsubst %/libcublas.so,%,$(firstword $(wildcard \
                   $(addsuffix /libcublas.so,$(addprefix $(CUDA_ROOT)/,lib64 lib targets/x86_64-linux/lib)))))
  ifeq ($(CUDA_LIBDIR),)
    ifeq ($(CUDA),1)
      $(error CUDA=1 but cuBLAS was not found under $(CUDA_ROOT))
    endif
    $(warning nvcc found but no cuBLAS under '$(CUDA_ROOT)': building without CUDA)
    NVCC :=
  endif
endif
ifneq ($(NVCC),)
  CUDA_ON     := 1
  CPPFLAGS    += -DHAVE_CUDA
  NVCCFLAGS   := -O2 -std=c++17 $(foreach a,$(CUDA_ARCH),-gencode arch=compute_$(a),code=sm_$(a)) \
                 -Xcompiler -Wall,-Wextra,-Werror,-fPIC -Ilib -Ibuild -DHAVE_CUDA
  CUDA_LIBS   := -L$(CUDA_LIBDIR) -Wl,-rpath,$(CUDA_LIBDIR) -lcublas -lcudart -lstdc++
  CUDA_STATUS := on ($(NVCC), sm_$(subst $(eval) ,/sm_,$(CUDA_ARCH)))
else
  CUDA_ON     :=
  CUDA_STATUS := off
endif

# ---- sources -----------------------------------------------------------------------------
LIB_SRC    := $(wildcard lib/*.c)
LIB_OBJ    := $(LIB_SRC:%.c=$(BUILD)/%.o)
CU_SRC     := $(if $(CUDA_ON),$(wildcard kernels/*.cu))
CU_OBJ     := $(CU_SRC:%.cu=$(BUILD)/%.o)
TOOL_SRC   := $(wildcard bin/*.c)
TOOLS      := $(TOOL_SRC:.c=)
UNIT_SRC   := $(wildcard tests/unit/test_*.c)
UNIT_BIN   := $(UNIT_SRC:%.c=$(BUILD)/%)
SUPPORT_SRC := $(wildcard tests/support/*.c)
SUPPORT_BIN := $(SUPPORT_SRC:%.c=$(BUILD)/%)
FUZZ_SRC   := $(wildcard tests/fuzz/fuzz_*.c)
# CUDA-vs-CPU op tests (tests/kernels), built only with CUDA; they self-skip without a GPU
KERNEL_TEST_BIN := $(if $(CUDA_ON),$(patsubst %.c,$(BUILD)/%,$(wildcard tests/kernels/test_*.c)))
LIBCORE    := $(BUILD)/libcore.a
LIBCUDA    := $(if $(CUDA_ON),$(BUILD)/libcore_cuda.a)
# The tools reach the GPU through a plugin (kernels/cuda_plugin.cuh) that lib/device.c loads only
# when a GPU is asked for: a process on the CPU never pays for loading cuBLAS. The CUDA op tests
# link the kernels directly.
CUDA_PLUGIN := $(if $(CUDA_ON),$(BUILD)/libdlmkit-cuda.so)
LINK_LIBS  := $(LIBCORE) $(LDLIBS)
KERNEL_TEST_LIBS := $(LIBCORE) $(LIBCUDA) $(LDLIBS) $(CUDA_LIBS)
include tests/cudaemu/cudaemu.mk

.PHONY: all tools deps data test unit-tests bench fuzz fixture-check install clean reproduce models \
        gpu-check status FORCE
.DEFAULT_GOAL := all
# tool and test objects are intermediate files of pattern rules; keep them between builds
.PRECIOUS: $(BUILD)/bin/%.o $(BUILD)/tests/unit/%.o $(BUILD)/tests/support/%.o

all: tools data
	@echo "dlmkit: built $(words $(TOOLS)) tools in bin/ (CUDA $(CUDA_STATUS))"

tools: $(TOOLS)

include data/data.mk

# ---- Debian packages ---------------------------------------------------------------------
# Installed when missing and we are root; otherwise the apt-get line is printed.
# DEPS=0 skips this step: tests/gpu-check.sh on a machine with no apt or network, which checks
# the four libraries the build links itself (tests/gpu-env.sh).
DEB_PACKAGES := libmsgpack-dev libpcre2-dev libjansson-dev libopenblas-dev bats parallel nodejs \
                g++ clang libomp-14-dev libclang-rt-14-dev util-linux jq xxd gnuplot-nox
ifeq ($(DEPS),0)
deps: ;
else
deps: build/.deps-ok
endif
build/.deps-ok: Makefile
	@mkdir -p build
	@if ! command -v dpkg-query >/dev/null; then \
	  echo "dlmkit: not a Debian system; make sure these are installed: $(DEB_PACKAGES)"; \
	else \
	  missing=$$(for p in $(DEB_PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done; \
	    command -v npm >/dev/null || echo npm); \
	  if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" = 0 ]; then \
	      echo "dlmkit: installing missing packages:" $$missing; \
	      apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing || exit 1; \
	    else \
	      echo "dlmkit: missing packages; run: sudo apt-get install -y" $$missing >&2; exit 1; \
	    fi; \
	  fi; \
	fi
	@touch $@

# ---- build flags and version -------------------------------------------------------------
# Objects depend on a stamp holding the flags, so changing ASAN/CFLAGS/CUDA rebuilds them.
FLAGS_LINE := $(CC) $(ALL_CFLAGS) $(CPPFLAGS) $(LDFLAGS) cuda=$(CUDA_STATUS) $(NVCCFLAGS)
$(BUILD)/.flags: FORCE | deps
	@mkdir -p $(@D)
	@echo '$(FLAGS_LINE)' | cmp -s - $@ || echo '$(FLAGS_LINE)' > $@

VERSION := 0.1.0
build/version.h: FORCE
	@mkdir -p build
	@{ echo '#define DLM_VERSION "$(VERSION)"'; \
	   echo '#define DLM_COMMIT "'"$$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"'"'; \
	   echo '#define DLM_CUDA "$(CUDA_STATUS)"'; \
	   echo '#define DLM_CC "$(shell $(CC) --version | head -1)"'; \
	   echo '#define DLM_CFLAGS "$(ALL_CFLAGS)"'; \
	   echo '#define DLM_CUDA_PLUGIN "$(abspath $(BUILD))/libdlmkit-cuda.so"'; } > $@.tmp
	@cmp -s $@.tmp $@ && rm $@.tmp || mv $@.tmp $@
FORCE:

# ---- compile and link --------------------------------------------------------------------
$(BUILD)/%.o: %.c $(BUILD)/.flags build/version.h | deps
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(CPPFLAGS) $(DEPFLAGS) -c $< -o $@

$(BUILD)/%.o: %.cu $(BUILD)/.flags | deps
	@mkdir -p $(@D)
	$(NVCC) $(NVCCFLAGS) $(DEPFLAGS) -c $< -o $@

$(LIBCORE): $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/libcore_cuda.a: $(CU_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

# -z defs: the plugin needs nothing from libcore (it is loaded into tools that have it, but the
# kernels must stay self-contained for the static op tests too)
$(CUDA_PLUGIN): $(CU_OBJ)
	$(NVCC) -shared -o $@ $^ -L$(CUDA_LIBDIR) -Xlinker -rpath,$(CUDA_LIBDIR),-z,defs -lcublas

# bin/ holds one flavour at a time; this stamp names it so a switch relinks every tool.
build/.tools-flavour: FORCE
	@mkdir -p build
	@echo '$(BUILD)' | cmp -s - $@ || echo '$(BUILD)' > $@

bin/%: $(BUILD)/bin/%.o $(LIBCORE) $(CUDA_PLUGIN) build/.tools-flavour
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) $< -o $@ $(LINK_LIBS)

$(BUILD)/tests/unit/%: $(BUILD)/tests/unit/%.o $(LIBCORE) $(CUDA_PLUGIN)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) $< -o $@ $(LINK_LIBS)

# test-support programs the bats tests run (tests/support/fixturetool: fixtures without Python)
$(BUILD)/tests/support/%: $(BUILD)/tests/support/%.o $(LIBCORE)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) $< -o $@ $(LINK_LIBS)

$(BUILD)/tests/kernels/%: $(BUILD)/tests/kernels/%.o $(LIBCORE) $(LIBCUDA)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) $< -o $@ $(KERNEL_TEST_LIBS)
.PRECIOUS: $(BUILD)/tests/kernels/%.o

-include $(shell find build -name '*.d' 2>/dev/null)

# ---- tests -------------------------------------------------------------------------------
# the unit tests, and the support programs of the bats tests
unit-tests: $(UNIT_BIN) $(SUPPORT_BIN)

test: tools data unit-tests $(KERNEL_TEST_BIN) $(EMU_TEST_BIN) $(EMU_PLUGIN)
	@BUILD=$(BUILD) sh tests/run.sh $(UNIT_BIN) $(KERNEL_TEST_BIN) $(EMU_TEST_BIN)

# on a GPU machine: CUDA build for sm_90, every kernel and fixture set vs the CPU, the timings
# beside PyTorch, one summary table (< 8 min); results in GPU_CHECK_OUT (the device runner: $OUT)
GPU_CHECK_OUT ?= build/gpu-check
gpu-check:
	@GPU_CHECK_OUT='$(GPU_CHECK_OUT)' sh tests/gpu-check.sh

fixture-check: bin/fixture-check data
	@test -n "$(DIR)" || { echo "usage: make fixture-check DIR=<fixture dir>" >&2; exit 2; }
	bin/fixture-check $(DIR)

# ---- fuzzing (clang + libFuzzer) ---------------------------------------------------------
FUZZ_RUNS ?= 1000000
FUZZ_BIN  := $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)
# -Wno-pass-failed: at -O1 clang cannot honour some `omp simd` hints; that costs speed, not
# correctness, and the fuzzers do not measure speed.
FUZZ_FLAGS := $(WARNINGS) -Wno-pass-failed -O1 -g -fsanitize=fuzzer,address,undefined -fopenmp \
              $(filter-out -DHAVE_CUDA,$(CPPFLAGS))
build/fuzz/%: tests/fuzz/%.c $(LIB_SRC) build/version.h | deps
	@mkdir -p $(@D)
	clang $(FUZZ_FLAGS) $< $(LIB_SRC) -o $@ $(LDLIBS)
fuzz: $(FUZZ_BIN) data
	@sh tests/fuzz/run.sh $(FUZZ_RUNS) $(FUZZ_BIN)

# ---- benchmarks --------------------------------------------------------------------------
bench: tools data
	@sh tests/bench/run.sh

# ---- the main job ------------------------------------------------------------------------
reproduce: tools data
include pipelines/reproduce.mk
include pipelines/models.mk

# ---- install / clean ---------------------------------------------------------------------
install: tools data
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/dlmkit/gpt2
	install -m 755 $(TOOLS) $(DESTDIR)$(PREFIX)/bin
	$(if $(CUDA_PLUGIN),install -d $(DESTDIR)$(PREFIX)/lib/dlmkit && \
	  install -m 755 $(CUDA_PLUGIN) $(DESTDIR)$(PREFIX)/lib/dlmkit)
	install -m 644 $(GPT2_VOCAB_FILES) $(DESTDIR)$(PREFIX)/share/dlmkit/gpt2

clean:
	rm -rf build $(TOOLS)
