/* Baseline for the fd_write bench: N write(2) calls of one byte to /dev/null. */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    int fd = open("/dev/null", O_WRONLY);
    char c = 'x';
    for (long i = 0; i < n; i++) {
        if (write(fd, &c, 1) != 1) return 1;
    }
    return 0;
}
