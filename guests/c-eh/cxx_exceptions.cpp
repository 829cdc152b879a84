// C++ exceptions as clang builds them with -fwasm-exceptions (clang-16 emits the legacy
// encoding, which wasmix translates at load): a throw caught three frames up, destructors
// run on the way, handlers chosen by type, a rethrow, and a catch (...).
#include <stdio.h>

struct Oops {
    int code;
};

struct Guard {
    const char *name;
    ~Guard() { printf("unwound %s\n", name); }
};

__attribute__((noinline)) void thrower(int n) {
    if (n == 0) throw Oops{7};
    Guard g{n == 1 ? "inner" : "outer"};
    thrower(n - 1);
}

__attribute__((noinline)) int by_type(int which) {
    try {
        if (which == 0) throw 42;
        if (which == 1) throw Oops{9};
        throw 2.5;
    } catch (int i) {
        return i;
    } catch (const Oops &o) {
        return o.code;
    } catch (...) {
        return -1;
    }
}

__attribute__((noinline)) void rethrower() {
    try {
        thrower(0);
    } catch (Oops &o) {
        o.code += 100;
        throw;
    }
}

int main() {
    try {
        thrower(2);
        puts("not reached");
    } catch (const Oops &o) {
        printf("caught Oops %d\n", o.code);
    }
    printf("by type: %d %d %d\n", by_type(0), by_type(1), by_type(2));
    try {
        rethrower();
    } catch (const Oops &o) {
        printf("rethrown %d\n", o.code);
    }
    return 0;
}
