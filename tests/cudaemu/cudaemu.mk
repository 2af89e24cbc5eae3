# The CUDA emulator (tests/cudaemu/cuda_runtime.h says what it models and checks): kernels/
# compiled by g++ against an emulated runtime, so that every kernel runs on the CPU, in CI,
# without nvcc or a GPU. Included by the Makefile; x86-64 only (elsewhere EMU_TEST_BIN and
# EMU_PLUGIN are empty).
#   $(EMU_TEST_BIN)  the op tests of tests/kernels linked with the emulated kernels (make test
#                    runs them, labelled [cuda-emu]), and tests/cudaemu/test_emu (the emulator's
#                    own checks: it must catch the bugs it claims to);
#   $(EMU_PLUGIN)    the CUDA plugin built the same way, for the bats tests that run the tools
#                    with --device cuda (DLMKIT_CUDA_PLUGIN points at it); needs a CUDA build
#                    of the tools (HAVE_CUDA), since only that one loads a plugin.
ifeq ($(shell uname -m),x86_64)
EMU_DIR      := $(BUILD)/cudaemu
EMU_CXXFLAGS  = -std=c++17 $(CFLAGS) -Wall -Wextra -Werror -Wno-unknown-pragmas -ffp-contract=off \
                -fPIC -D_GNU_SOURCE -DHAVE_CUDA -DDLM_CUDA_EMU -Itests/cudaemu -Ikernels -Ilib -Ibuild
EMU_OBJ      := $(patsubst kernels/%.cu,$(EMU_DIR)/%.o,$(wildcard kernels/*.cu)) \
                $(patsubst tests/cudaemu/%.cpp,$(EMU_DIR)/%.o,$(wildcard tests/cudaemu/emu_*.cpp))
EMU_LIB      := $(EMU_DIR)/libcore_cudaemu.a
EMU_PLUGIN   := $(if $(CUDA_ON),$(EMU_DIR)/libdlmkit-cuda.so)
EMU_TEST_BIN := $(patsubst tests/kernels/%.c,$(EMU_DIR)/tests/%,$(wildcard tests/kernels/test_*.c)) \
                $(EMU_DIR)/tests/test_emu
.PRECIOUS: $(EMU_DIR)/%.cpp

# a kernel source as C++ for the emulator (launches and dynamic shared memory rewritten)
$(EMU_DIR)/%.cpp: kernels/%.cu tests/cudaemu/rewrite.sh
	@mkdir -p $(@D)
	sh tests/cudaemu/rewrite.sh $< $@
$(EMU_DIR)/test_emu.cpp: tests/cudaemu/test_emu.cu tests/cudaemu/rewrite.sh
	@mkdir -p $(@D)
	sh tests/cudaemu/rewrite.sh $< $@

$(EMU_DIR)/%.o: $(EMU_DIR)/%.cpp $(BUILD)/.flags build/version.h | deps
	$(CXX) $(EMU_CXXFLAGS) $(DEPFLAGS) -c $< -o $@
$(EMU_DIR)/emu_%.o: tests/cudaemu/emu_%.cpp $(BUILD)/.flags | deps
	@mkdir -p $(@D)
	$(CXX) $(EMU_CXXFLAGS) $(DEPFLAGS) -c $< -o $@

$(EMU_LIB): $(EMU_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(EMU_DIR)/libdlmkit-cuda.so: $(EMU_OBJ)
	$(CXX) $(LDFLAGS) -shared -o $@ $^ -Wl,-z,defs -lopenblas

$(EMU_DIR)/tests/test_emu: $(EMU_DIR)/test_emu.o $(EMU_LIB)
	@mkdir -p $(@D)
	$(CXX) $(LDFLAGS) $< -o $@ $(EMU_LIB) -lopenblas
$(EMU_DIR)/tests/%: $(BUILD)/tests/kernels/%.o $(LIBCORE) $(EMU_LIB)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) $< -o $@ $(LIBCORE) $(EMU_LIB) $(LDLIBS) -lstdc++
endif
