// Native Linux baselines for bench/net.sh, each the same operation the guest (net.wasm) does:
//   tcp MIB         a forked child sends MIB MiB over loopback TCP in 64 KiB writes; the
//                   parent times accept to EOF (MiB/s)
//   epoll N         round trips through a forked child waiting in epoll_wait on a socket
//                   pair (median, µs)
//   http FILE       serves FILE over HTTP/1.0, one connection at a time, sendfile for the
//                   body; prints "listening PORT" first and runs until killed
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

static void die(const char *what) { perror(what); exit(1); }

static int listener(int *port) {
    int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(l, (void *)&a, sizeof a) || listen(l, 128)) die("listen");
    socklen_t len = sizeof a;
    getsockname(l, (void *)&a, &len);
    *port = ntohs(a.sin_port);
    printf("listening %d\n", *port);
    fflush(stdout);
    return l;
}

static int write_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0) return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    if (!strcmp(argv[1], "tcp")) {
        long mib = atol(argv[2]);
        int port, l = listener(&port);
        if (fork() == 0) {
            int c = socket(AF_INET, SOCK_STREAM, 0);
            struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                                    .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
            if (connect(c, (void *)&a, sizeof a)) die("connect");
            static char chunk[64 << 10];
            memset(chunk, 7, sizeof chunk);
            for (long i = 0; i < mib * 16; i++)
                if (write_all(c, chunk, sizeof chunk)) die("write");
            close(c);
            _exit(0);
        }
        int c = accept(l, NULL, NULL);
        uint64_t t0 = now_ns(), got = 0;
        static char buf[64 << 10];
        for (ssize_t n; (n = read(c, buf, sizeof buf)) > 0;) got += (uint64_t)n;
        double secs = (now_ns() - t0) / 1e9;
        wait(NULL);
        printf("tcp_throughput %.1f\n", got / 1048576.0 / secs);
    } else if (!strcmp(argv[1], "epoll")) {
        int rounds = atoi(argv[2]), sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) die("socketpair");
        char byte = 1;
        if (fork() == 0) {
            int ep = epoll_create1(0);
            struct epoll_event ev = {.events = EPOLLIN}, out;
            epoll_ctl(ep, EPOLL_CTL_ADD, sv[1], &ev);
            for (int i = 0; i < rounds; i++) {
                epoll_wait(ep, &out, 1, -1);
                if (read(sv[1], &byte, 1) != 1) die("read");
                if (write_all(sv[1], &byte, 1)) die("write");
            }
            _exit(0);
        }
        uint64_t *t = malloc(sizeof *t * (size_t)rounds);
        for (int i = 0; i < rounds; i++) {
            uint64_t t0 = now_ns();
            if (write_all(sv[0], &byte, 1)) die("write");
            if (read(sv[0], &byte, 1) != 1) die("read");
            t[i] = now_ns() - t0;
        }
        wait(NULL);
        qsort(t, (size_t)rounds, sizeof *t, cmp);
        printf("epoll_round_trip_p50 %.1f\n", t[rounds / 2] / 1e3);
    } else if (!strcmp(argv[1], "http")) {
        signal(SIGPIPE, SIG_IGN); // a client that left is no reason to stop
        int port, l = listener(&port);
        int f = open(argv[2], O_RDONLY);
        if (f < 0) die("open");
        struct stat st;
        fstat(f, &st);
        for (;;) {
            int c = accept(l, NULL, NULL);
            char req[1024];
            size_t have = 0;
            while (have < sizeof req && !memmem(req, have, "\r\n\r\n", 4)) {
                ssize_t n = read(c, req + have, sizeof req - have);
                if (n <= 0) break;
                have += (size_t)n;
            }
            if (!memmem(req, have, "\r\n\r\n", 4)) { close(c); continue; }
            char head[128];
            int hn = snprintf(head, sizeof head,
                              "HTTP/1.0 200 OK\r\nContent-Length: %lld\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n",
                              (long long)st.st_size);
            off_t off = write_all(c, head, (size_t)hn) ? st.st_size : 0;
            while (off < st.st_size)
                if (sendfile(c, f, &off, (size_t)(st.st_size - off)) <= 0) break;
            close(c);
        }
    }
    return 0;
}
