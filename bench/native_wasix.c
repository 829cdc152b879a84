// Native Linux baselines for bench/wasix.sh, each the same operation the guest benchmark does:
//   spawn N      posix_spawn of /bin/true + waitpid
//   threads N    pthread_create + pthread_join of an empty thread
//   futex N      two threads ping-pong on a futex word (ns per one-way hand-off)
//   signal N     a thread blocked in a futex wait gets pthread_kill'ed; latency to the handler
//   pipe MIB     64 KiB writes into a pipe a child process drains (GB/s)
#define _GNU_SOURCE
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

static void fwait(atomic_uint *w, unsigned v) { syscall(SYS_futex, w, FUTEX_WAIT_PRIVATE, v, NULL, NULL, 0); }
static void fwake(atomic_uint *w) { syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0); }

static void *empty(void *a) { return a; }

static atomic_uint word;
static long rounds;
static void *peer(void *a) {
    for (long i = 0; i < rounds; i++) {
        unsigned want = 2 * i + 1;
        unsigned v;
        while ((v = atomic_load(&word)) != want) fwait(&word, v);
        atomic_store(&word, want + 1);
        fwake(&word);
    }
    return a;
}

static _Atomic uint64_t handled_at, sent_at;
static atomic_uint handled, go;
static pthread_t main_thread;
static void handler(int sig) { (void)sig; atomic_store(&handled_at, now_ns()); atomic_fetch_add(&handled, 1); }
static void *sender(void *a) {
    for (long i = 0; i < rounds; i++) {
        while (atomic_load(&go) != i + 1) usleep(50);
        usleep(200);
        atomic_store(&sent_at, now_ns());
        pthread_kill(main_thread, SIGUSR1);
    }
    return a;
}
static int cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    const char *what = argc > 1 ? argv[1] : "";
    long n = argc > 2 ? atol(argv[2]) : 1000;
    if (!strcmp(what, "spawn")) {
        uint64_t t0 = now_ns();
        for (long i = 0; i < n; i++) {
            pid_t pid;
            char *args[] = {"true", NULL};
            posix_spawn(&pid, "/bin/true", NULL, NULL, args, environ);
            waitpid(pid, NULL, 0);
        }
        printf("spawn_exit_join %lu ns\n", (unsigned long)((now_ns() - t0) / n));
    } else if (!strcmp(what, "threads")) {
        uint64_t t0 = now_ns();
        for (long i = 0; i < n; i++) {
            pthread_t t;
            pthread_create(&t, NULL, empty, NULL);
            pthread_join(t, NULL);
        }
        printf("thread_spawn_join %lu ns\n", (unsigned long)((now_ns() - t0) / n));
    } else if (!strcmp(what, "futex")) {
        rounds = n;
        pthread_t t;
        pthread_create(&t, NULL, peer, NULL);
        uint64_t t0 = now_ns();
        for (long i = 0; i < n; i++) {
            atomic_store(&word, 2 * i + 1);
            fwake(&word);
            unsigned v;
            while ((v = atomic_load(&word)) != 2 * i + 2) fwait(&word, v);
        }
        uint64_t dt = now_ns() - t0;
        pthread_join(t, NULL);
        printf("futex_one_way %lu ns\n", (unsigned long)(dt / (2 * n)));
    } else if (!strcmp(what, "signal")) {
        rounds = n;
        main_thread = pthread_self();
        struct sigaction sa = {0};
        sa.sa_handler = handler;
        sigaction(SIGUSR1, &sa, NULL);
        pthread_t t;
        pthread_create(&t, NULL, sender, NULL);
        uint64_t *lat = calloc(n, sizeof *lat);
        atomic_uint park = 0;
        for (long i = 0; i < n; i++) {
            atomic_store(&go, i + 1);
            while (atomic_load(&handled) < (unsigned)i + 1) fwait(&park, 0);
            lat[i] = atomic_load(&handled_at) - atomic_load(&sent_at);
        }
        pthread_join(t, NULL);
        qsort(lat, n, sizeof *lat, cmp);
        printf("signal_blocked_p50 %lu ns\nsignal_blocked_p99 %lu ns\n", (unsigned long)lat[n / 2],
               (unsigned long)lat[n * 99 / 100]);
    } else if (!strcmp(what, "pipe")) {
        int fds[2];
        if (pipe(fds)) return 1;
        pid_t pid = fork();
        static char buf[65536];
        if (pid == 0) {
            close(fds[1]);
            while (read(fds[0], buf, sizeof buf) > 0) {}
            _exit(0);
        }
        close(fds[0]);
        memset(buf, 7, sizeof buf);
        uint64_t t0 = now_ns();
        for (long i = 0; i < n * 16; i++) {
            size_t off = 0;
            while (off < sizeof buf) off += write(fds[1], buf + off, sizeof buf - off);
        }
        close(fds[1]);
        waitpid(pid, NULL, 0);
        printf("pipe_throughput %.2f GB/s\n", (double)n * 1048576 / (now_ns() - t0));
    } else {
        fprintf(stderr, "usage: native_wasix spawn|threads|futex|signal|pipe N\n");
        return 2;
    }
    return 0;
}
