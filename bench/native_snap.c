// Native equivalent of `snapbench incremental MIB PERMILLE` for bench/criu.sh: CRIU dumps
// this process from outside while it runs.
//
// Fills MIB MiB with incompressible bytes (the guest's xorshift), creates DIR/filled and
// waits for SIGUSR1; then rewrites PERMILLE per mille of its pages at random (8 bytes each,
// as the guest does), creates DIR/rewritten and waits. Meanwhile a second thread
// computes and notes the longest it was held up (a frozen process holds it); on SIGUSR2 that
// gap, in ns, is written to DIR/gap (at any time) and the gap is reset; SIGTERM ends it.
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static _Atomic uint64_t gap;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

static void *observe(void *unused) {
    (void)unused;
    uint64_t last = now_ns();
    for (;;) {
        uint64_t now = now_ns();
        uint64_t g = now - last;
        if (g > atomic_load_explicit(&gap, memory_order_relaxed))
            atomic_store_explicit(&gap, g, memory_order_relaxed);
        last = now;
    }
    return NULL;
}

static void touch(const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    fclose(f);
}

// Waits for SIGUSR1 or SIGTERM (returned), answering every SIGUSR2 meanwhile with the gap.
static int wait_sig(const sigset_t *set, const char *dir) {
    for (;;) {
        int sig;
        sigwait(set, &sig);
        if (sig != SIGUSR2) return sig;
        char path[4096], tmp[4096];
        snprintf(path, sizeof path, "%s/gap", dir);
        snprintf(tmp, sizeof tmp, "%s/gap.tmp", dir);
        FILE *f = fopen(tmp, "w");
        if (!f) {
            perror(tmp);
            exit(1);
        }
        fprintf(f, "%llu\n", (unsigned long long)atomic_exchange(&gap, 0));
        fclose(f);
        rename(tmp, path);
    }
}

static uint64_t x = 0x9E3779B97F4A7C15u;
static uint64_t next(void) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: native_snap MIB PERMILLE DIR\n");
        return 2;
    }
    size_t len = (size_t)atol(argv[1]) << 20;
    long permille = atol(argv[2]);
    const char *dir = argv[3];
    // Descriptors inherited from whatever started the bench would be dumped too (CRIU
    // cannot place one opened outside its mount namespace): this process keeps only stdio.
    for (int fd = 3; fd < 1024; fd++) close(fd);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    uint64_t *bytes = malloc(len);
    for (size_t i = 0; i < len / 8; i++) bytes[i] = next();
    pthread_t t;
    pthread_create(&t, NULL, observe, NULL);
    touch(dir, "filled");
    if (wait_sig(&set, dir) == SIGTERM) return 0;
    size_t pages = len / 4096;
    for (long i = 0; i < (long)(pages * permille / 1000); i++) {
        size_t p = next() % pages;
        bytes[p * 512] = next();
    }
    atomic_store(&gap, 0);
    touch(dir, "rewritten");
    while (wait_sig(&set, dir) != SIGTERM) {
    }
    uint8_t check = 0;
    for (size_t p = 0; p < pages; p++) check ^= ((uint8_t *)bytes)[p * 4096];
    printf("check %u\n", check);
    return 0;
}
