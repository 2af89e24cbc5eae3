// emu_threads: the CUDA emulator's scheduler (cuda_runtime.h says what it models and checks):
// every GPU thread a fiber with its own stack, the block and warp barriers, the shuffles, and
// launches, block by block. Single-threaded: a launch holds a lock while it runs.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <utility>
#include <vector>

#include "emu_internal.h"

#if defined(__SANITIZE_ADDRESS__)
#define EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EMU_ASAN 1
#endif
#endif
#ifdef EMU_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#if !defined(__x86_64__)
#error "the CUDA emulator's fiber switch is written for x86-64"
#endif

uint3 threadIdx, blockIdx;
dim3 blockDim, gridDim;

// ---- fibers ---------------------------------------------------------------------------------

// emu_switch(save, load): saves the callee-saved registers on the current stack, stores its
// stack pointer in *save, continues on the stack `load` (saved the same way, or made by
// fiber_stack_frame).
extern "C" void emu_switch(void **save, void *load);
asm(".text\n"
    ".globl emu_switch\n"
    ".hidden emu_switch\n"
    ".type emu_switch, @function\n"
    "emu_switch:\n"
    "    pushq %rbp\n    pushq %rbx\n    pushq %r12\n    pushq %r13\n    pushq %r14\n"
    "    pushq %r15\n"
    "    movq %rsp, (%rdi)\n"
    "    movq %rsi, %rsp\n"
    "    popq %r15\n    popq %r14\n    popq %r13\n    popq %r12\n    popq %rbx\n    popq %rbp\n"
    "    ret\n"
    ".size emu_switch, .-emu_switch\n");

#ifdef EMU_ASAN
enum { STACK_BYTES = 1 << 19 };  // ASan's redzones make frames several times larger
#else
enum { STACK_BYTES = 1 << 17 };
#endif

struct barrier {
    uint64_t gen;        // completed rounds
    unsigned arrived;    // threads waiting in this round
    const char *file;    // where the first of them waits
    int line;
};

struct fiber {
    void *sp;            // saved stack pointer while suspended
    char *stack;         // lowest usable byte of its stack (NULL until started)
    uint3 tid;
    unsigned warp, lane;
    bool started, done;
    barrier *waits_on;   // the barrier it waits at, or NULL
    uint64_t wait_gen;   // that barrier's generation when it arrived
    void *asan_fake;     // ASan's fake-stack handle while it is suspended
};

struct warp_state {
    barrier bar;
    unsigned lanes, live;  // lanes the warp has in this block, lanes not exited
    uint64_t slot[2][32];  // shuffle values, by the parity of the barrier they wait at
};

static struct {
    std::vector<fiber> threads;
    std::vector<warp_state> warps;
    barrier block_bar;
    unsigned live;                // threads not exited
    void (*body)(void *);
    void *arg;
    void *dyn_smem;
    size_t dyn_bytes;
    fiber *current;
    void *sched_sp;               // the scheduler's stack while a thread runs
    const void *sched_stack;      // (ASan) the scheduler's stack, learnt at the first switch
    size_t sched_stack_size;
    std::vector<char *> free_stacks;
    uint64_t rng;
    enum { FORWARD, REVERSE, SHUFFLE } schedule;
} g;

static char *take_stack(void)
{
    if (!g.free_stacks.empty()) {
        char *s = g.free_stacks.back();
        g.free_stacks.pop_back();
#ifdef EMU_ASAN
        __asan_unpoison_memory_region(s, STACK_BYTES);  // redzones left by its last thread
#endif
        return s;
    }
    long page = sysconf(_SC_PAGESIZE);
    void *m = mmap(nullptr, STACK_BYTES + page, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) emu_fail("cannot map a %d-byte thread stack", (int)STACK_BYTES);
    mprotect(m, page, PROT_NONE);  // a guard page below: an overflow faults at once
    return (char *)m + page;
}

static void asan_start_switch(void **fake, const void *stack, size_t size)
{
#ifdef EMU_ASAN
    __sanitizer_start_switch_fiber(fake, stack, size);
#else
    (void)fake, (void)stack, (void)size;
#endif
}

static void asan_finish_switch(void *fake, bool learn_scheduler_stack)
{
#ifdef EMU_ASAN
    if (learn_scheduler_stack)
        __sanitizer_finish_switch_fiber(fake, &g.sched_stack, &g.sched_stack_size);
    else
        __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#else
    (void)fake, (void)learn_scheduler_stack;
#endif
}

/* From a thread: back to the scheduler until it resumes this thread. */
static void yield_thread(void)
{
    fiber *f = g.current;
    asan_start_switch(&f->asan_fake, g.sched_stack, g.sched_stack_size);
    emu_switch(&f->sp, g.sched_sp);
    asan_finish_switch(f->asan_fake, true);
}

static void release(barrier *b)
{
    b->gen++;
    b->arrived = 0;
    b->file = nullptr;
}

/* A thread exits: the barriers it no longer holds up may complete. */
static void thread_exit(fiber *f)
{
    f->done = true;
    g.live--;
    warp_state &w = g.warps[f->warp];
    w.live--;
    if (w.bar.arrived > 0)
        emu_fail("thread %u exited while lanes of its warp %u wait at %s:%d (a shuffle or "
                 "__syncwarp needs every lane)",
                 f->lane, f->warp, w.bar.file, w.bar.line);
    if (g.block_bar.arrived > 0 && g.block_bar.arrived == g.live) release(&g.block_bar);
}

static void fiber_entry(void)
{
    asan_finish_switch(nullptr, true);
    g.body(g.arg);
    fiber *f = g.current;
    thread_exit(f);
    g.free_stacks.push_back(f->stack);  // not reused before the switch below leaves it
    asan_start_switch(nullptr, g.sched_stack, g.sched_stack_size);
    void *unused;
    emu_switch(&unused, g.sched_sp);
    __builtin_unreachable();
}

/* The stack a new thread starts on: emu_switch's six saved registers (zero), then fiber_entry
 * as the return address, with the alignment a function expects on entry. */
static void *fiber_stack_frame(char *stack)
{
    uintptr_t top = ((uintptr_t)stack + STACK_BYTES) & ~(uintptr_t)15;
    void **sp = (void **)top;
    *--sp = nullptr;                       // fiber_entry's (never used) return address
    *--sp = (void *)fiber_entry;           // where emu_switch's ret goes
    for (int i = 0; i < 6; i++) *--sp = nullptr;
    return sp;
}

static void resume(fiber *f)
{
    if (!f->started) {
        f->started = true;
        f->stack = take_stack();
        f->sp = fiber_stack_frame(f->stack);
    }
    g.current = f;
    threadIdx = f->tid;
    void *fake = nullptr;
    asan_start_switch(&fake, f->stack, STACK_BYTES);
    emu_switch(&g.sched_sp, f->sp);
    asan_finish_switch(fake, false);
}

// ---- barriers -------------------------------------------------------------------------------

/* Arrive at b, which completes when `expected` threads have arrived; wait until it does. */
static void arrive_and_wait(barrier *b, unsigned expected, const char *file, int line,
                            const char *what)
{
    if (b->arrived == 0) {
        b->file = file;
        b->line = line;
    } else if (b->line != line || (b->file != file && strcmp(b->file, file) != 0)) {
        emu_fail("divergent %s: thread (%u,%u,%u) of block (%u,%u,%u) is at %s:%d while others "
                 "wait at %s:%d",
                 what, threadIdx.x, threadIdx.y, threadIdx.z, blockIdx.x, blockIdx.y, blockIdx.z,
                 file, line, b->file, b->line);
    }
    if (++b->arrived == expected) {
        release(b);
        return;
    }
    fiber *f = g.current;
    f->waits_on = b;
    f->wait_gen = b->gen;
    while (b->gen == f->wait_gen) yield_thread();
    f->waits_on = nullptr;
}

void emu_syncthreads(const char *file, int line)
{
    arrive_and_wait(&g.block_bar, g.live, file, line, "__syncthreads");
}

/* The calling thread's warp, after checking that a warp-wide operation is legal here. */
static warp_state &full_warp(unsigned mask, const char *file, int line)
{
    fiber *f = g.current;
    warp_state &w = g.warps[f->warp];
    if (mask != 0xffffffffu)
        emu_fail("%s:%d: warp mask %#x: the emulator (and kernels/) only use the full warp", file,
                 line, mask);
    if (w.lanes != 32)
        emu_fail("%s:%d: a warp operation in a block of %u threads: warp %u has %u lanes, the "
                 "full mask names missing ones",
                 file, line, blockDim.x * blockDim.y * blockDim.z, f->warp, w.lanes);
    if (w.live != 32)
        emu_fail("%s:%d: a warp operation after %u lane(s) of warp %u exited", file, line,
                 32 - w.live, f->warp);
    return w;
}

void emu_syncwarp(unsigned mask, const char *file, int line)
{
    warp_state &w = full_warp(mask, file, line);
    arrive_and_wait(&w.bar, 32, file, line, "__syncwarp");
}

uint64_t emu_shfl_xor(unsigned mask, uint64_t bits, int lane_mask, int width, const char *file,
                      int line)
{
    warp_state &w = full_warp(mask, file, line);
    if (width != 32 || lane_mask < 0 || lane_mask > 31)
        emu_fail("%s:%d: __shfl_xor_sync with lane mask %d, width %d", file, line, lane_mask,
                 width);
    // Slots alternate between consecutive warp barriers: a lane that has read this exchange
    // and publishes the next one writes the other half, and cannot publish again into this
    // half before every lane has arrived at that next barrier, i.e. has read this one.
    unsigned lane = g.current->lane, half = (unsigned)(w.bar.gen & 1);
    w.slot[half][lane] = bits;
    arrive_and_wait(&w.bar, 32, file, line, "__shfl_xor_sync");  // every lane has published
    return w.slot[half][lane ^ (unsigned)lane_mask];
}

void *emu_dynamic_shared(void) { return g.dyn_smem; }

// ---- running a grid -------------------------------------------------------------------------

static uint64_t next_random(void)
{
    g.rng ^= g.rng << 13, g.rng ^= g.rng >> 7, g.rng ^= g.rng << 17;
    return g.rng;
}

static bool runnable(const fiber &f)
{
    return !f.done && !(f.waits_on && f.waits_on->gen == f.wait_gen);
}

/* Resumes each runnable lane of warp w once: in lane order, backwards, or shuffled (lane
 * (a·i + b) mod 32 at turn i, a odd and b drawn each time: a permutation from one draw).
 * Returns whether any ran. */
static bool run_warp(unsigned w)
{
    fiber *lanes = &g.threads[32 * w];
    unsigned n = g.warps[w].lanes, a = 1, b = 0;
    bool any = false;
    for (unsigned i = 0; i < n && !any; i++) any = runnable(lanes[i]);
    if (!any) return false;
    if (g.schedule == g.SHUFFLE) {
        uint64_t r = next_random();
        a = (unsigned)(r & 31) | 1, b = (unsigned)(r >> 5 & 31);
    } else if (g.schedule == g.REVERSE) {
        a = 31, b = 31;  // 31·i + 31 = 31 - i (mod 32)
    }
    for (unsigned i = 0; i < 32; i++) {
        unsigned lane = (a * i + b) & 31;
        if (lane < n && runnable(lanes[lane])) resume(&lanes[lane]);
    }
    return true;
}

/* A new random order of the warps (shuffle schedule only). */
static void shuffle_priority(std::vector<unsigned> &priority)
{
    if (g.schedule != g.SHUFFLE) return;
    for (size_t i = priority.size() - 1; i > 0; i--)
        std::swap(priority[i], priority[next_random() % (i + 1)]);
}

/* One round of the schedule. forward/reverse: every warp, in warp order or backwards.
 * shuffle: only the first warp, in a random priority order of the warps, that can run; the
 * order is drawn for each block and redrawn now and then (1 round in 16). A warp so runs ahead
 * of the others by many barriers, until a __syncthreads stops it, and a missing barrier, even
 * one between two reductions far apart, shows as a wrong result. Returns whether any thread
 * ran. */
static bool run_round(std::vector<unsigned> &priority)
{
    unsigned nw = (unsigned)g.warps.size();
    if (g.schedule != g.SHUFFLE) {
        bool progress = false;
        for (unsigned i = 0; i < nw; i++)
            progress |= run_warp(g.schedule == g.REVERSE ? nw - 1 - i : i);
        return progress;
    }
    if (next_random() % 16 == 0) shuffle_priority(priority);
    for (unsigned w : priority)
        if (run_warp(w)) return true;
    return false;
}

[[noreturn]] static void deadlock(void)
{
    fprintf(stderr, "cuda-emu: %s: deadlock in block (%u,%u,%u): every live thread waits:\n",
            emu_running_kernel, blockIdx.x, blockIdx.y, blockIdx.z);
    for (const fiber &f : g.threads)
        if (!f.done && f.waits_on)
            fprintf(stderr, "  thread (%u,%u,%u) at %s:%d\n", f.tid.x, f.tid.y, f.tid.z,
                    f.waits_on->file, f.waits_on->line);
    emu_exit();
}

static void run_block(void)
{
    unsigned n = (unsigned)g.threads.size();
    for (fiber &f : g.threads) f.started = f.done = false, f.waits_on = nullptr;
    for (warp_state &w : g.warps) w.live = w.lanes, w.bar = barrier{};
    g.block_bar = barrier{};
    g.live = n;
    if (g.dyn_bytes) memset(g.dyn_smem, 0xff, g.dyn_bytes);  // NaNs: uninitialised reads show
    std::vector<unsigned> priority(g.warps.size());
    for (unsigned w = 0; w < priority.size(); w++) priority[w] = w;
    shuffle_priority(priority);
    while (g.live > 0)
        if (!run_round(priority)) deadlock();
}

static bool valid_config(dim3 grid, dim3 block, size_t smem, const void *kernel)
{
    unsigned long threads = (unsigned long)block.x * block.y * block.z;
    if (threads == 0 || threads > 1024 || block.z > 64) return false;
    if (grid.x == 0 || grid.x > 0x7fffffffu || grid.y == 0 || grid.y > 65535 || grid.z == 0 ||
        grid.z > 65535)
        return false;
    return smem <= emu_smem_limit(kernel);
}

/* EMU_SCHEDULE, read at every launch; EMU_SEED (an integer), the shuffle's seed, read at the
 * first */
static void schedule_from_env(void)
{
    if (!g.rng) {
        const char *seed = getenv("EMU_SEED");
        uint64_t n = seed ? strtoull(seed, nullptr, 0) : 0;
        g.rng = 0x2545f4914f6cdd1dull ^ n * 0x9e3779b97f4a7c15ull;
        if (!g.rng) g.rng = 1;  // xorshift's one stuck state
    }
    const char *s = getenv("EMU_SCHEDULE");
    if (!s || !*s || strcmp(s, "shuffle") == 0) g.schedule = g.SHUFFLE;
    else if (strcmp(s, "forward") == 0) g.schedule = g.FORWARD;
    else if (strcmp(s, "reverse") == 0) g.schedule = g.REVERSE;
    else emu_fail("EMU_SCHEDULE=%s: expected forward, reverse or shuffle", s);
}

/* Runs body(arg) as every thread of a grid (a checked configuration), block by block. */
static void run_grid(const char *name, dim3 grid, dim3 block, size_t smem, void (*body)(void *),
                     void *arg)
{
    static std::mutex launch_lock;
    std::lock_guard<std::mutex> lock(launch_lock);
    schedule_from_env();
    emu_running_kernel = name;
    unsigned n = block.x * block.y * block.z;
    g.threads.assign(n, fiber{});
    g.warps.assign((n + 31) / 32, warp_state{});
    for (unsigned i = 0; i < n; i++) {
        fiber &f = g.threads[i];
        f.tid = uint3{i % block.x, i / block.x % block.y, i / (block.x * block.y)};
        f.warp = i / 32;
        f.lane = i % 32;
        g.warps[f.warp].lanes++;
    }
    g.body = body;
    g.arg = arg;
    g.dyn_bytes = smem;
    g.dyn_smem = malloc(smem ? smem : 1);  // the exact size: ASan sees any read beyond it
    if (!g.dyn_smem) emu_fail("out of memory for %zu bytes of shared memory", smem);
    gridDim = grid;
    blockDim = block;
    // blocks in order (forward), backwards, or shuffled: a block that reads what another block
    // of the same launch writes gets a different answer
    size_t blocks = (size_t)grid.x * grid.y * grid.z;
    std::vector<size_t> block_order(blocks);
    for (size_t i = 0; i < blocks; i++)
        block_order[i] = g.schedule == g.REVERSE ? blocks - 1 - i : i;
    if (g.schedule == g.SHUFFLE)
        for (size_t i = blocks - 1; i > 0; i--)
            std::swap(block_order[i], block_order[next_random() % (i + 1)]);
    for (size_t b : block_order) {
        blockIdx = uint3{(unsigned)(b % grid.x), (unsigned)(b / grid.x % grid.y),
                         (unsigned)(b / ((size_t)grid.x * grid.y))};
        run_block();
    }
    free(g.dyn_smem);
    g.dyn_smem = nullptr;
    emu_running_kernel = "(no kernel)";
}

void emu_submit_grid(const char *name, dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                     const void *kernel, void (*body)(void *), std::shared_ptr<void> arg)
{
    if (!valid_config(grid, block, smem, kernel)) {
        emu_set_error(cudaErrorInvalidConfiguration);
        return;
    }
    emu_enqueue(stream, kernel, [=] { run_grid(name, grid, block, smem, body, arg.get()); });
}
