// Native Linux baseline for bench/stacks.sh: fork + child _exit + waitpid of a process with
// MIB mebibytes of touched heap, ROUNDS times; prints the median in ns.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    long mib = argc > 1 ? atol(argv[1]) : 1;
    long rounds = argc > 2 ? atol(argv[2]) : 200;
    volatile char *ballast = malloc((size_t)mib << 20);
    for (long i = 0; i < mib << 20; i += 4096) ballast[i] = (char)(i | 1);
    uint64_t *t = calloc((size_t)rounds, sizeof *t);
    for (long r = 0; r < rounds; r++) {
        uint64_t t0 = now_ns();
        pid_t pid = fork();
        if (pid == 0) _exit(0);
        waitpid(pid, NULL, 0);
        t[r] = now_ns() - t0;
    }
    qsort(t, (size_t)rounds, sizeof *t, cmp);
    printf("fork_exit_join_%ldmib %lu ns\n", mib, (unsigned long)t[rounds / 2]);
    return ballast[0] == 0;
}
