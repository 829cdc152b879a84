/* Byte crunching: CRC-32 (table driven), base64 encode and decode, and a run-length coder
 * over 4 MiB buffers. */
#include <string.h>
#include "bench.h"

static uint32_t crc_table[256];
static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}
static uint32_t crc32(const unsigned char *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) c = crc_table[(c ^ p[i]) & 255] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static size_t enc64(const unsigned char *in, size_t n, char *out) {
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64[v >> 18]; out[o++] = b64[(v >> 12) & 63];
        out[o++] = b64[(v >> 6) & 63]; out[o++] = b64[v & 63];
    }
    return o; /* callers pass multiples of 3 */
}
static size_t dec64(const char *in, size_t n, unsigned char *out) {
    static signed char rev[256];
    if (!rev['B']) for (int i = 0; i < 64; i++) rev[(unsigned char)b64[i]] = (signed char)i;
    size_t o = 0;
    for (size_t i = 0; i + 3 < n; i += 4) {
        uint32_t v = (uint32_t)rev[(unsigned char)in[i]] << 18 | (uint32_t)rev[(unsigned char)in[i + 1]] << 12 |
                     (uint32_t)rev[(unsigned char)in[i + 2]] << 6 | (uint32_t)rev[(unsigned char)in[i + 3]];
        out[o++] = v >> 16; out[o++] = (v >> 8) & 255; out[o++] = v & 255;
    }
    return o;
}
static size_t rle(const unsigned char *in, size_t n, unsigned char *out) {
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && j - i < 255 && in[j] == in[i]) j++;
        out[o++] = (unsigned char)(j - i);
        out[o++] = in[i];
        i = j;
    }
    return o;
}

int main(int argc, char **argv) {
    int scale = bench_start(argc, argv);
    crc_init();
    const size_t n = 3 << 20;
    unsigned char *buf = malloc(n), *back = malloc(n), *runs = malloc(2 * n);
    char *text = malloc(n / 3 * 4 + 4);
    uint64_t h = FNV_START;
    for (int r = 0; r < scale; r++) {
        for (size_t i = 0; i < n; i++) buf[i] = (rng_next() % 5 == 0) ? (unsigned char)rng_next() : buf[i ? i - 1 : 0];
        uint32_t c = crc32(buf, n);
        size_t t = enc64(buf, n, text);
        size_t b = dec64(text, t, back);
        if (b != n || memcmp(back, buf, n)) { fprintf(stderr, "base64 round trip failed\n"); return 1; }
        size_t k = rle(buf, n, runs);
        h = fnv(&c, 4, h);
        h = fnv(&k, sizeof k, h);
        h = fnv(text + t / 2, 16, h);
    }
    report("bytes", h);
    return 0;
}
