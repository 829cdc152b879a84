// WASIX from C with Debian's wasi-libc: the calls are declared by hand as wasix_32v1 imports.
// A signal handler through the callback, a pipe, dup, the process ids, and an interval timer.
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define WASIX(name) __attribute__((import_module("wasix_32v1"), import_name(#name)))
WASIX(callback_signal) void wasix_callback_signal(const char *name, uint32_t len);
WASIX(proc_raise_interval) uint16_t wasix_raise_interval(uint32_t sig, uint64_t ms, uint32_t repeat);
WASIX(fd_pipe) uint16_t wasix_fd_pipe(uint32_t *r, uint32_t *w);
WASIX(fd_dup) uint16_t wasix_fd_dup(uint32_t fd, uint32_t *out);
WASIX(proc_id) uint16_t wasix_proc_id(uint32_t *pid);
WASIX(thread_signal) uint16_t wasix_thread_signal(uint32_t tid, uint32_t sig);
WASIX(thread_id) uint16_t wasix_thread_id(uint32_t *tid);

static volatile int usr1, alrm;

__attribute__((export_name("__wasm_signal"))) void on_signal(int sig) {
    if (sig == 10) usr1++;
    if (sig == 14) alrm++;
}

int main(void) {
    wasix_callback_signal("__wasm_signal", 13);
    uint32_t tid;
    wasix_thread_id(&tid);
    wasix_thread_signal(tid, 10);
    printf("usr1 handled %d\n", usr1);

    uint32_t r, w, d;
    if (wasix_fd_pipe(&r, &w) || wasix_fd_dup(w, &d)) return 10;
    if (write((int)d, "piped", 5) != 5) return 11;
    close((int)w);
    close((int)d);
    char buf[16] = {0};
    ssize_t n = read((int)r, buf, sizeof buf - 1);
    printf("pipe says %s, then eof %d\n", buf, read((int)r, buf, 1) == 0);

    uint32_t pid;
    wasix_proc_id(&pid);
    printf("pid %u\n", pid);

    wasix_raise_interval(14, 5, 1);
    volatile uint64_t x = 1;
    while (alrm < 3) x = x * 6364136223846793005u + 1;  // no calls: asynchronous delivery
    wasix_raise_interval(14, 0, 0);
    printf("alarms %d\n", alrm >= 3);
    return n == 5 ? 0 : 12;
}
