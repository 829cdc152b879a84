/* POSIX file behaviour through wasi-libc: run with a scratch directory mounted at `/`. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int failures;

#define CHECK(cond)                                                             \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "CHECK FAILED line %d: %s (errno %d: %s)\n",       \
                    __LINE__, #cond, errno, strerror(errno));                   \
            failures++;                                                         \
        }                                                                       \
    } while (0)

#define FAILS_WITH(expr, code) CHECK((expr) == -1 && errno == (code))

static void stdio_roundtrip(void) {
    FILE *f = fopen("/data.txt", "w");
    CHECK(f != NULL);
    fprintf(f, "line one\nline %d\n", 2);
    CHECK(fclose(f) == 0);
    char buf[64] = {0};
    f = fopen("/data.txt", "r");
    CHECK(f != NULL);
    CHECK(fgets(buf, sizeof buf, f) != NULL && strcmp(buf, "line one\n") == 0);
    CHECK(fgets(buf, sizeof buf, f) != NULL && strcmp(buf, "line 2\n") == 0);
    CHECK(fgets(buf, sizeof buf, f) == NULL && feof(f));
    fclose(f);
    CHECK(fopen("/missing.txt", "r") == NULL && errno == ENOENT);
}

static void lseek_and_append(void) {
    int fd = open("/seek.txt", O_CREAT | O_RDWR | O_TRUNC, 0644);
    CHECK(fd >= 0);
    CHECK(write(fd, "0123456789", 10) == 10);
    CHECK(lseek(fd, 0, SEEK_CUR) == 10);
    CHECK(lseek(fd, 2, SEEK_SET) == 2);
    CHECK(lseek(fd, -3, SEEK_END) == 7);
    char c;
    CHECK(read(fd, &c, 1) == 1 && c == '7');
    FAILS_WITH(lseek(fd, 0, 42), EINVAL);
    FAILS_WITH(lseek(fd, -100, SEEK_SET), EINVAL);
    close(fd);

    fd = open("/append.txt", O_CREAT | O_TRUNC | O_WRONLY | O_APPEND, 0644);
    CHECK(fd >= 0);
    CHECK(write(fd, "ab", 2) == 2);
    CHECK(lseek(fd, 0, SEEK_SET) == 0);
    CHECK(write(fd, "cd", 2) == 2);
    CHECK(lseek(fd, 0, SEEK_CUR) == 4);
    CHECK(pwrite(fd, "xyz", 3, 0) == 3);
    CHECK(lseek(fd, 0, SEEK_CUR) == 4);
    off_t end = lseek(fd, 0, SEEK_END);
    CHECK(end == 4 || end == 7);
    close(fd);

    fd = open("/seek.txt", O_RDONLY);
    char pbuf[4] = {0};
    CHECK(pread(fd, pbuf, 3, 4) == 3 && memcmp(pbuf, "456", 3) == 0);
    FAILS_WITH(write(fd, "x", 1), EBADF);
    close(fd);
    FAILS_WITH(read(fd, pbuf, 1), EBADF);
    FAILS_WITH(close(fd), EBADF);
}

static void stat_identity(void) {
    int a = open("/seek.txt", O_RDONLY), b = open("/append.txt", O_RDONLY);
    struct stat sa, sb;
    CHECK(fstat(a, &sa) == 0 && fstat(b, &sb) == 0);
    CHECK(sa.st_dev == sb.st_dev && sa.st_ino != sb.st_ino);
    CHECK(S_ISREG(sa.st_mode) && sa.st_size == 10);
    close(a);
    close(b);
    struct stat sd;
    CHECK(stat("/", &sd) == 0 && S_ISDIR(sd.st_mode));
}

static void directories(void) {
    CHECK(mkdir("/d", 0755) == 0);
    FAILS_WITH(mkdir("/d", 0755), EEXIST);
    int fd = open("/d/f", O_CREAT | O_WRONLY, 0644);
    CHECK(fd >= 0);
    close(fd);
    FAILS_WITH(rmdir("/d"), ENOTEMPTY);
    FAILS_WITH(open("/d/f/x", O_RDONLY), ENOTDIR);
    FAILS_WITH(open("/d", O_WRONLY), EISDIR);
    FAILS_WITH(unlink("/d"), EISDIR);
    DIR *dir = opendir("/d");
    CHECK(dir != NULL);
    int seen = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (strcmp(e->d_name, "f") == 0) {
            seen++;
            CHECK(e->d_type == DT_REG);
        }
    }
    CHECK(seen == 1);
    closedir(dir);
    CHECK(rename("/d/f", "/d/g") == 0);
    FAILS_WITH(access("/d/f", F_OK), ENOENT);
    CHECK(symlink("g", "/d/link") == 0);
    char target[16] = {0};
    CHECK(readlink("/d/link", target, sizeof target) == 1 && target[0] == 'g');
    CHECK(link("/d/g", "/d/hard") == 0);
    struct stat st;
    CHECK(stat("/d/hard", &st) == 0 && st.st_nlink == 2);
    CHECK(unlink("/d/link") == 0 && unlink("/d/hard") == 0 && unlink("/d/g") == 0);
    CHECK(rmdir("/d") == 0);
    CHECK(chdir("/") == 0 || errno == ENOSYS);
}

static void escapes(void) {
    errno = 0;
    CHECK(open("/../../etc/passwd", O_RDONLY) == -1 && (errno == EPERM || errno == ENOTCAPABLE));
    int root = open("/", O_RDONLY | O_DIRECTORY);
    CHECK(root >= 0);
    errno = 0;
    CHECK(openat(root, "../etc/passwd", O_RDONLY) == -1 && (errno == EPERM || errno == ENOTCAPABLE));
    close(root);
}

static void misc(void) {
    struct timespec res;
    CHECK(clock_getres(CLOCK_MONOTONIC, &res) == 0 && (res.tv_sec > 0 || res.tv_nsec > 0));
    CHECK(clock_getres(CLOCK_REALTIME, &res) == 0);
    FAILS_WITH(shutdown(1, SHUT_RDWR), ENOTSOCK);
    FAILS_WITH(shutdown(77, SHUT_RDWR), EBADF);
    CHECK(isatty(open("/seek.txt", O_RDONLY)) == 0);
    unlink("/seek.txt");
    unlink("/append.txt");
    unlink("/data.txt");
}

int main(void) {
    stdio_roundtrip();
    lseek_and_append();
    stat_identity();
    directories();
    escapes();
    misc();
    if (failures) {
        fprintf(stderr, "%d checks failed\n", failures);
        return 1;
    }
    puts("libc ok");
    return 0;
}
