/* The native counterpart of guests/rust/src/bin/hello.rs, for containerd comparisons. */
#include <stdio.h>

int main(void) {
    puts("hello from wasmix");
    return 0;
}
