/* Sorting: libc qsort over integers, doubles and strings, and a merge sort of records. */
#include <string.h>
#include "bench.h"

typedef struct { uint32_t key; uint32_t id; char name[8]; } Rec;

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}
static int cmp_f64(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void merge_sort(Rec *v, Rec *tmp, size_t n) {
    if (n < 2) return;
    size_t h = n / 2;
    merge_sort(v, tmp, h);
    merge_sort(v + h, tmp, n - h);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) tmp[k++] = v[j].key < v[i].key ? v[j++] : v[i++];
    while (i < h) tmp[k++] = v[i++];
    while (j < n) tmp[k++] = v[j++];
    memcpy(v, tmp, n * sizeof *v);
}

int main(int argc, char **argv) {
    int scale = bench_start(argc, argv);
    const size_t n = 200000;
    uint32_t *u = malloc(n * sizeof *u);
    double *d = malloc(n * sizeof *d);
    char **s = malloc(n * sizeof *s);
    char *pool = malloc(n * 12);
    Rec *recs = malloc(n * sizeof *recs), *tmp = malloc(n * sizeof *tmp);
    uint64_t h = FNV_START;
    for (int r = 0; r < scale; r++) {
        for (size_t i = 0; i < n; i++) {
            u[i] = (uint32_t)rng_next();
            d[i] = (double)(rng_next() % 1000000) / 7.0;
            char *p = pool + i * 12;
            for (int k = 0; k < 11; k++) p[k] = 'a' + (char)(rng_next() % 26);
            p[11] = 0;
            s[i] = p;
            recs[i].key = (uint32_t)(rng_next() % 50000);
            recs[i].id = (uint32_t)i;
            memcpy(recs[i].name, p, 8);
        }
        qsort(u, n, sizeof *u, cmp_u32);
        qsort(d, n, sizeof *d, cmp_f64);
        qsort(s, n / 2, sizeof *s, cmp_str);
        merge_sort(recs, tmp, n);
        h = fnv(&u[n / 3], 4, h);
        h = fnv(&d[n / 5], 8, h);
        h = fnv(s[n / 4], 11, h);
        h = fnv(&recs[n / 2].id, 4, h);
    }
    report("sort", h);
    return 0;
}
