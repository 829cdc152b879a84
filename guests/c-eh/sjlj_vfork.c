// setjmp/longjmp done with Wasm exceptions (clang -mllvm -wasm-enable-sjlj; clang-16 emits
// the legacy encoding, which wasmix translates at load), and vfork as wasix-libc's
// exception-handling build does it: a setjmp in the caller, then proc_fork_env; the child's
// proc_exit2 or proc_exec3 returns, in the parent, which longjmps back to its vfork
// (`vfork.c`, libc-top-half/musl/src/process, wasix-org/wasix-libc @ d4297b59).
//
// Debian's 2022 wasi-libc has no setjmp.h or setjmp runtime: the declarations are here, the
// runtime in sjljrt.c.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint32_t jmp_buf[8];
int setjmp(jmp_buf) __attribute__((returns_twice));
_Noreturn void longjmp(jmp_buf, int);

// WASIX calls, as wasix-libc declares them (`wasi/api_wasix.h`).
#define WASIX(name) __attribute__((import_module("wasix_32v1"), import_name(name)))
WASIX("proc_fork_env") int32_t proc_fork_env(uint32_t *pid);
WASIX("proc_exit2") void proc_exit2(int32_t code);
WASIX("proc_exec3")
int32_t proc_exec3(const char *name, size_t name_len, const char *args, size_t args_len,
                   const char *envs, size_t envs_len, int32_t search, const char *path,
                   size_t path_len);
WASIX("proc_join") int32_t proc_join(void *pid, int32_t flags, void *status);
WASIX("proc_id") int32_t proc_id(uint32_t *pid);
__attribute__((import_module("wasi_snapshot_preview1"), import_name("proc_raise")))
int32_t proc_raise(int32_t sig);

// vfork as the exception-handling libc has it: a macro, so setjmp is in the caller's frame.
static jmp_buf vfork_jump;
static uint32_t vfork_child;
static int vfork_internal(int jumped) {
    if (jumped) return (int)vfork_child;
    int32_t err = proc_fork_env(&vfork_child);
    if (err) return -err;
    return 0;
}
#define vfork() vfork_internal(setjmp(vfork_jump))
static _Noreturn void vfork_restore(void) { longjmp(vfork_jump, 1); }

static void child_exit(int code) {
    proc_exit2(code);
    vfork_restore();
}

static void child_exec(const char *path, const char *args) {
    int32_t err = proc_exec3(path, strlen(path), args, strlen(args), "", 0, 0, "", 0);
    if (err == 0) vfork_restore();
    printf("exec failed errno=%d\n", err);
    child_exit(127);
}

// Waits for `pid`; its exit code (or -1).
static int join(uint32_t pid) {
    uint8_t which[8] = {1}, status[8] = {0};
    memcpy(which + 4, &pid, 4);
    int32_t err = proc_join(which, 0, status);
    if (err) return -err;
    uint16_t code;
    memcpy(&code, status + 2, 2);
    return status[0] == 1 ? code : -1;
}

static jmp_buf outer, inner;

__attribute__((noinline)) static void deep(jmp_buf to, int n, int val) {
    if (n == 0) longjmp(to, val);
    deep(to, n - 1, val);
}

__attribute__((noinline)) static int middle(void) {
    volatile int local = 5;
    if (setjmp(inner) == 0) {
        deep(outer, 3, 7); // past this frame's setjmp, to main's
        return -1;
    }
    return local;
}

__attribute__((noinline)) static int jump_back(int val) {
    jmp_buf here;
    int r = setjmp(here);
    if (r == 0) deep(here, 4, val);
    return r;
}

__attribute__((noinline)) static int jump_outer(void) {
    int r = setjmp(outer);
    if (r == 0) return middle();
    return r;
}

__attribute__((noinline)) static int jump_in_loop(void) {
    jmp_buf here;
    volatile int sum = 0;
    for (volatile int i = 0; i < 3; i++) {
        int r = setjmp(here);
        if (r == 0) deep(here, i, i + 10);
        sum += r;
    }
    return sum;
}

static void jumps(void) {
    printf("back %d\n", jump_back(42));
    printf("zero became %d\n", jump_back(0));
    printf("outer %d\n", jump_outer());
    printf("loop sum %d\n", jump_in_loop());
}

__attribute__((noinline)) static void vfork_exit(void) {
    uint32_t me;
    proc_id(&me);
    volatile int shared = 0;
    int pid = vfork();
    if (pid == 0) {
        shared = 1; // the child borrows the parent's memory
        child_exit(3);
    }
    uint32_t after;
    proc_id(&after);
    printf("child %s, shared=%d, same pid=%d, exit %d\n", pid > 0 ? "made" : "failed", shared,
           me == after, join((uint32_t)pid));
}

__attribute__((noinline)) static int vfork_exec(const char *path) {
    int pid = vfork();
    if (pid == 0) child_exec(path, "child.wasm\nexit\n5");
    return pid;
}

// The child is killed before it can _exit or exec: the stack it borrowed is gone, so the
// parent cannot go on.
__attribute__((noinline)) static void vfork_killed(void) {
    int pid = vfork();
    if (pid == 0) {
        proc_raise(9); // SIGKILL
        child_exit(1);
    }
    puts("parent resumed");
}

int main(int argc, char **argv) {
    const char *what = argc > 1 ? argv[1] : "";
    if (!strcmp(what, "jumps")) {
        jumps();
    } else if (!strcmp(what, "vfork-exit")) {
        vfork_exit();
    } else if (!strcmp(what, "vfork-killed")) {
        vfork_killed();
    } else if (!strcmp(what, "vfork-exec") && argc > 2) {
        printf("exec'd child exit %d\n", join((uint32_t)vfork_exec(argv[2])));
        printf("failed exec's child exit %d\n", join((uint32_t)vfork_exec("/nonexistent.wasm")));
    } else {
        fprintf(stderr, "usage: sjlj_vfork jumps | vfork-exit | vfork-killed | vfork-exec PATH\n");
        return 2;
    }
    return 0;
}
