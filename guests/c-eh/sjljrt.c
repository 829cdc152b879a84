// The setjmp/longjmp runtime that clang's -mllvm -wasm-enable-sjlj code calls, written here
// because Debian's 2022 wasi-libc has none. It follows LLVM 16's
// WebAssemblyLowerEmscriptenEHSjLj: each function that calls setjmp keeps a table of {id,
// label} entries (malloc'd, 4 entries, first id 0); saveSetjmp(env, label, table, size)
// gives env a fresh id, records it and returns the table (grown when full, its size through
// getTempRet0); longjmp becomes __wasm_longjmp(env, val), which throws tag 1 (__c_longjmp)
// with a pointer to {env, val}; the catching function asks testSetjmp(*env, table, size) for
// the label (0: not its setjmp, throw on). A file of its own: LLVM 16's pass crashes on a
// file that defines these next to setjmp calls (built with the pass all the same, which
// defines the __c_longjmp tag the throw needs).
#include <stdint.h>
#include <stdlib.h>

struct entry {
    uint32_t id, label;
};

static uint32_t last_id;
static uint32_t temp_ret;
static struct {
    void *env;
    int val;
} longjmp_arg;

uint32_t getTempRet0(void) { return temp_ret; }

struct entry *saveSetjmp(uint32_t *env, uint32_t label, struct entry *table, uint32_t size) {
    for (uint32_t i = 0; i < size; i++) {
        if (table[i].id == 0) {
            *env = table[i].id = ++last_id;
            table[i].label = label;
            table[i + 1].id = 0; // the caller zeroes only the first entry
            temp_ret = size;
            return table;
        }
    }
    size *= 2;
    table = realloc(table, sizeof(*table) * (size + 1));
    if (!table) abort();
    return saveSetjmp(env, label, table, size);
}

uint32_t testSetjmp(uint32_t id, struct entry *table, uint32_t size) {
    for (uint32_t i = 0; i < size && table[i].id; i++)
        if (table[i].id == id) return table[i].label;
    return 0;
}

_Noreturn void __wasm_longjmp(void *env, int val) {
    longjmp_arg.env = env;
    longjmp_arg.val = val ? val : 1;
    __builtin_wasm_throw(1, &longjmp_arg);
}

