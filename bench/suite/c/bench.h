/* What every C program of the suite shares: the scale argument, a deterministic generator,
 * the checksum line, (built with -DBENCH_SIGNAL) a signal handler registered at start, as a
 * WASIX program with handlers does, and (built with -DBENCH_HARNESS) a harness's start and
 * end hooks imported from module `bench`. */
#ifndef BENCH_H
#define BENCH_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef BENCH_SIGNAL
__attribute__((import_module("wasix_32v1"), import_name("callback_signal")))
void wasix_callback_signal(const char *name, size_t len);
__attribute__((export_name("__wasm_signal"))) void bench_on_signal(int sig) { (void)sig; }
#endif

#ifdef BENCH_HARNESS
/* A benchmark harness's hooks, as Sightglass's programs import them; `bench/suite/bench.wat`
 * provides them with `--preload bench=...` under either runtime. */
__attribute__((import_module("bench"), import_name("start"))) void bench_harness_start(void);
__attribute__((import_module("bench"), import_name("end"))) void bench_harness_end(void);
#endif

static inline int bench_start(int argc, char **argv) {
#ifdef BENCH_SIGNAL
    wasix_callback_signal("__wasm_signal", 13);
#endif
#ifdef BENCH_HARNESS
    bench_harness_start();
    atexit(bench_harness_end);
#endif
    int n = argc > 1 ? atoi(argv[1]) : 1;
    if (n <= 0) {
        fprintf(stderr, "usage: %s [SCALE]: SCALE is a positive whole number\n", argv[0]);
        exit(2);
    }
    return n;
}

static uint64_t rng_state = 88172645463325252ull;
static inline uint64_t rng_next(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

static inline uint64_t fnv(const void *p, size_t n, uint64_t h) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}
#define FNV_START 0xcbf29ce484222325ull

static inline void report(const char *name, uint64_t v) { printf("%s %016llx\n", name, (unsigned long long)v); }
#endif
