// setjmp/longjmp over WASIX stack_checkpoint/stack_restore, and fork, from C with Debian's
// wasi-libc (which has neither): the calls are declared by hand. The module is NOT
// asyncify-instrumented here: wasmix instruments it when it loads it.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WASIX(name) __attribute__((import_module("wasix_32v1"), import_name(#name)))
typedef struct { uint64_t user; uint8_t hash[16]; } snapshot_t;
WASIX(stack_checkpoint) uint16_t wasix_stack_checkpoint(snapshot_t *s, uint64_t *ret);
WASIX(stack_restore) _Noreturn void wasix_stack_restore(const snapshot_t *s, uint64_t val);
WASIX(proc_fork) uint16_t wasix_proc_fork(uint32_t copy_memory, uint32_t *pid);
WASIX(proc_join) uint16_t wasix_proc_join(uint32_t *pid, uint32_t flags, uint8_t *status);

__attribute__((returns_twice, noinline)) static int my_setjmp(snapshot_t *b) {
    uint64_t ret = 0;
    if (wasix_stack_checkpoint(b, &ret) != 0) abort();
    return (int)ret;
}

_Noreturn static void my_longjmp(snapshot_t *b, int v) { wasix_stack_restore(b, (uint64_t)v); }

static snapshot_t jb;
static volatile int frames;

__attribute__((noinline)) static void descend(int depth, int value) {
    frames++;
    if (depth == 0) my_longjmp(&jb, value);
    descend(depth - 1, value);
    frames--;  // never reached
}

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int join(uint32_t pid) {
    uint32_t opt[2] = {1, pid};
    uint8_t status[8] = {0};
    if (wasix_proc_join(opt, 0, status) != 0) return -1;
    return status[0] == 1 ? (status[2] | status[3] << 8) : 1000 + status[4];
}

__attribute__((noinline)) static void set_in_a_frame_that_returns(void) {
    char frame[4096];
    char *volatile escape = frame;  // keeps the frame on the shadow stack
    escape[0] = 1;
    if (my_setjmp(&jb) != 0) puts("unreachable: resumed a returned frame");
    escape[1] = escape[0];
}

__attribute__((noinline)) static int deep_checkpoints(int depth, int rounds) {
    volatile int pad = depth;
    if (depth > 0) return deep_checkpoints(depth - 1, rounds) + pad - depth;
    snapshot_t local;
    memset(&local, 0, sizeof local);
    for (int i = 0; i < rounds; i++) my_setjmp(&local);
    return 0;
}

int main(int argc, char **argv) {
    const char *what = argc > 1 ? argv[1] : "jump";
    if (!strcmp(what, "jump")) {
        volatile int counter = 0;
        int r = my_setjmp(&jb);
        counter++;
        if (r == 0) descend(5, 7);
        printf("setjmp returned %d through %d frames, counter %d\n", r, frames, counter);
        // Repeated jumps from nested calls: each return value once.
        volatile int seen = 0;
        r = my_setjmp(&jb);
        seen += r;
        if (r < 3) descend(r, r + 1);
        printf("jumped back 3 times, sum %d\n", seen);
        r = my_setjmp(&jb);
        if (r == 0) my_longjmp(&jb, 0);
        printf("longjmp with 0 makes setjmp return %d\n", r);
        return 0;
    }
    if (!strcmp(what, "fork")) {
        int r = my_setjmp(&jb);
        if (r == 9) {
            printf("child resumed setjmp with %d\n", r);
            fflush(stdout);
            exit(0);
        }
        uint32_t pid = 0;
        if (wasix_proc_fork(1, &pid) != 0) return 20;
        if (pid == 0) descend(3, 9);
        printf("parent: child exit %d\n", join(pid));
        return 0;
    }
    if (!strcmp(what, "forged")) {
        if (my_setjmp(&jb) == 0) {
            jb.hash[0] ^= 1;
            puts("jumping through an altered jmp_buf");
            fflush(stdout);
            my_longjmp(&jb, 1);
        }
        puts("unreachable: a forged jmp_buf was honoured");
        return 0;
    }
    if (!strcmp(what, "stale")) {
        set_in_a_frame_that_returns();
        puts("jumping into a returned frame");
        fflush(stdout);
        my_longjmp(&jb, 1);
    }
    if (!strcmp(what, "never-set")) {
        snapshot_t fresh;
        memset(&fresh, 0, sizeof fresh);
        my_longjmp(&fresh, 1);
    }
    if (!strcmp(what, "bench")) {
        int rounds = argc > 2 ? atoi(argv[2]) : 10000;
        volatile int i = 0;
        double t0 = now_us();
        if (my_setjmp(&jb) < rounds) {
            i++;
            my_longjmp(&jb, i);
        }
        double jump = (now_us() - t0) / rounds;
        int deep = rounds / 10;
        t0 = now_us();
        deep_checkpoints(100, deep);
        double capture = (now_us() - t0) / deep;
        // One line per measure, in ns, as bench/stacks.sh reads them.
        printf("setjmp_longjmp %.0f ns\nunwind_rewind_100_frames %.0f ns\n", jump * 1e3,
               capture * 1e3);
        return 0;
    }
    fprintf(stderr, "unknown scenario %s\n", what);
    return 2;
}
