// What an incremental snapshot of 256 MiB with 1 % of its pages rewritten can cost on this
// machine with no runtime around it: three ways of finding, protecting and copying the
// written pages, each followed by the same write and two fdatasyncs a journal commit needs.
// Used by bench/incr_floor.sh; the figures bound what wasmix's increment (issue 12: durable
// ≤ 5 ms, pause ≤ 0.5 ms) can reach by each design.
//
//   sync    today's wasmix design: userfaultfd write protection in sync mode, a handler
//           thread that notes and releases each page written; the increment re-protects the
//           noted pages while the threads run (one UFFDIO_WRITEPROTECT per run of pages up to
//           32 apart), stops the threads to re-protect what they wrote meanwhile, resumes
//           them and copies the pages.
//   async1  async mode (UFFD_FEATURE_WP_ASYNC: the kernel itself releases a written page):
//           one stop in which PAGEMAP_SCAN with PM_SCAN_WP_MATCHING finds the written pages
//           and protects them again, and the pages are copied (async mode cannot save a page
//           before a later write, so the copy must be done before the threads run).
//   async2  async mode, two stops: the first finds and re-protects the written pages; they
//           are copied while the threads run; the second finds the few pages written during
//           that copy, re-protects and copies them. A page copied in between and not found
//           the second time was not written since the first stop: its copy is as of the
//           second stop, the snapshot's instant.
//
// A computing thread runs beside the snapshotter throughout, writing a page of the memory at
// every turn (as a guest's stack is written) and noting the longest it was held up; it parks
// on a futex when asked (the stop). Usage: incr_floor MODE INCREMENTS FILE. Prints one line per
// increment: "MODE durable_us D stop_us S gap_us G pages N".
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/futex.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

// From linux/fs.h (6.7+): Debian 12's headers predate PAGEMAP_SCAN.
struct pm_scan_arg {
    uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
    uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
struct page_region {
    uint64_t start, end, categories;
};
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#define PM_SCAN_WP_MATCHING (1 << 0)
#define PM_SCAN_CHECK_WPASYNC (1 << 1)
#define PAGE_IS_WRITTEN (1 << 1)
#define FEATURE_WP_HUGETLBFS_SHMEM (1 << 12)
#define FEATURE_WP_UNPOPULATED (1 << 13)
#define FEATURE_WP_ASYNC (1 << 15)

#define PAGE 4096
#define LEN ((size_t)256 << 20)
#define PAGES (LEN / PAGE)
#define DIRTY 655 /* 1 % of the pages */
#define GAP 32

static char *mem;
static int uffd, pagemap;
static _Atomic int park, parked, quit;
static _Atomic uint64_t gap;
// Sync mode: pages the handler released since the last take, by page.
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint8_t *released;

static uint64_t now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

static void futex(_Atomic int *addr, int op, int val) {
    syscall(SYS_futex, addr, op, val, NULL, NULL, 0);
}

static void protect(size_t first, size_t pages, int wp) {
    struct uffdio_writeprotect w = {
        .range = {(uint64_t)mem + first * PAGE, pages * PAGE},
        .mode = wp ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
    };
    if (ioctl(uffd, UFFDIO_WRITEPROTECT, &w)) {
        perror("UFFDIO_WRITEPROTECT");
        exit(1);
    }
}

static void *handler(void *unused) {
    (void)unused;
    struct pollfd p = {.fd = uffd, .events = POLLIN};
    while (!quit) {
        if (poll(&p, 1, 100) <= 0)
            continue;
        struct uffd_msg m;
        if (read(uffd, &m, sizeof m) != sizeof m || m.event != UFFD_EVENT_PAGEFAULT)
            continue;
        size_t page = (m.arg.pagefault.address - (uint64_t)mem) / PAGE;
        pthread_mutex_lock(&lock);
        released[page] = 1;
        pthread_mutex_unlock(&lock);
        protect(page, 1, 0);
    }
    return NULL;
}

static void *compute(void *unused) {
    (void)unused;
    volatile uint64_t *stack = (volatile uint64_t *)(mem + 1000 * PAGE);
    uint64_t last = now_us();
    while (!quit) {
        if (park) {
            parked = 1;
            while (park)
                futex(&park, FUTEX_WAIT_PRIVATE, 1);
            parked = 0;
        }
        uint64_t t = now_us();
        *stack = t;
        if (t - last > gap)
            gap = t - last;
        last = t;
    }
    return NULL;
}

static void stop(void) {
    park = 1;
    while (!parked)
        ;
}

static void resume(void) {
    park = 0;
    futex(&park, FUTEX_WAKE_PRIVATE, 1);
    while (parked)
        ;
}

// Sync mode: the pages released since the last take (and forgets them).
static size_t take_released(size_t *out) {
    size_t n = 0;
    pthread_mutex_lock(&lock);
    for (size_t p = 0; p < PAGES; p++)
        if (released[p]) {
            released[p] = 0;
            out[n++] = p;
        }
    pthread_mutex_unlock(&lock);
    return n;
}

static void rearm(const size_t *pages, size_t n) {
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && pages[j] - pages[j - 1] <= GAP)
            j++;
        protect(pages[i], pages[j - 1] + 1 - pages[i], 1);
        i = j;
    }
}

// Async mode: finds the pages written since the last scan and protects them again.
static size_t scan(size_t *out) {
    static struct page_region vec[PAGES / 2];
    struct pm_scan_arg a = {
        .size = sizeof a,
        .flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
        .start = (uint64_t)mem,
        .end = (uint64_t)mem + LEN,
        .vec = (uint64_t)vec,
        .vec_len = PAGES / 2,
        .category_mask = PAGE_IS_WRITTEN,
        .return_mask = PAGE_IS_WRITTEN,
    };
    long regions = ioctl(pagemap, PAGEMAP_SCAN, &a);
    if (regions < 0) {
        perror("PAGEMAP_SCAN");
        exit(1);
    }
    size_t n = 0;
    for (long r = 0; r < regions; r++)
        for (uint64_t q = vec[r].start; q < vec[r].end; q += PAGE)
            out[n++] = (q - (uint64_t)mem) / PAGE;
    return n;
}

// Where the copies go: IMAGE_PAGES pages.
#define IMAGE_PAGES (4 * DIRTY)
static char *image;

// Copies `pages` into the image from its page `at` on.
static void copy(size_t at, const size_t *pages, size_t n) {
    if (at + n > IMAGE_PAGES) {
        fprintf(stderr, "incr_floor: %zu pages found, room for %d\n", at + n, IMAGE_PAGES);
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        memcpy(image + (at + i) * PAGE, mem + pages[i] * PAGE, PAGE);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: incr_floor sync|async1|async2 INCREMENTS FILE\n");
        return 2;
    }
    const char *mode = argv[1];
    int async = strcmp(mode, "sync") != 0;
    int increments = atoi(argv[2]);
    int journal = open(argv[3], O_RDWR | O_CREAT | O_TRUNC, 0644);
    int memfd = memfd_create("incr_floor", 0);
    if (journal < 0 || memfd < 0 || ftruncate(memfd, LEN)) {
        perror("setup");
        return 1;
    }
    mem = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    released = calloc(PAGES, 1);
    size_t *pages = malloc(PAGES * sizeof *pages), *more = malloc(PAGES * sizeof *more);
    image = malloc(IMAGE_PAGES * PAGE);
    uint64_t x = 0x9E3779B97F4A7C15u;
    for (size_t i = 0; i < LEN; i += 8) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        memcpy(mem + i, &x, 8);
    }
    memset(image, 1, IMAGE_PAGES * PAGE);
    uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    struct uffdio_api api = {
        .api = UFFD_API,
        .features = FEATURE_WP_HUGETLBFS_SHMEM | FEATURE_WP_UNPOPULATED |
                    (async ? FEATURE_WP_ASYNC : 0),
    };
    struct uffdio_register reg = {.range = {(uint64_t)mem, LEN}, .mode = UFFDIO_REGISTER_MODE_WP};
    pagemap = open("/proc/self/pagemap", O_RDONLY);
    if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) || ioctl(uffd, UFFDIO_REGISTER, &reg) ||
        pagemap < 0) {
        perror("userfaultfd");
        return 1;
    }
    protect(0, PAGES, 1);
    pthread_t h, c;
    if (!async)
        pthread_create(&h, NULL, handler, NULL);
    pthread_create(&c, NULL, compute, NULL);
    // The full snapshot before the first increment is left out: every increment starts from
    // a memory tracked since the one before.
    if (async)
        scan(pages);
    else
        take_released(pages);
    off_t end = 0;
    for (int round = 0; round < increments; round++) {
        for (int i = 0; i < DIRTY; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            mem[(x % PAGES) * PAGE + 8] = (char)x;
        }
        uint64_t t0 = now_us(), held = 0, s;
        size_t n = 0, m = 0;
        gap = 0;
        if (!async) {
            n = take_released(pages);
            rearm(pages, n);
            s = now_us();
            stop();
            m = take_released(more);
            rearm(more, m);
            resume();
            held = now_us() - s;
            copy(0, pages, n);
            copy(n, more, m);
        } else if (!strcmp(mode, "async1")) {
            s = now_us();
            stop();
            n = scan(pages);
            copy(0, pages, n);
            resume();
            held = now_us() - s;
        } else {
            s = now_us();
            stop();
            n = scan(pages);
            resume();
            held = now_us() - s;
            copy(0, pages, n);
            s = now_us();
            stop();
            m = scan(more);
            copy(n, more, m);
            resume();
            if (now_us() - s > held)
                held = now_us() - s;
        }
        // Appended, as a journal is: the frames, then the commit that follows them to disk.
        if (pwrite(journal, image, (n + m) * PAGE, end) < 0 || fdatasync(journal) ||
            pwrite(journal, "commit", 6, end + (n + m) * PAGE) < 0 || fdatasync(journal)) {
            perror("journal");
            return 1;
        }
        uint64_t durable = now_us() - t0;
        end += (n + m) * PAGE + 6;
        printf("%s durable_us %lu stop_us %lu gap_us %lu pages %zu\n", mode,
               (unsigned long)durable, (unsigned long)held, (unsigned long)gap, n + m);
        fflush(stdout);
    }
    quit = 1;
    pthread_join(c, NULL);
    if (!async)
        pthread_join(h, NULL);
    return 0;
}
