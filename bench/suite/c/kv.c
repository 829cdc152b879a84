/* A key-value store on an open-addressing hash table with malloc'd string keys and values:
 * inserts, lookups, overwrites and deletes, with the table growing and shrinking. */
#include <string.h>
#include "bench.h"

typedef struct { char *key; char *val; uint64_t hash; int used; } Slot;
static Slot *slots;
static size_t cap, count, tombs;

static uint64_t hash_str(const char *s) { return fnv(s, strlen(s), FNV_START); }

static void put(char *key, char *val);
static void grow(size_t ncap) {
    Slot *old = slots;
    size_t ocap = cap;
    slots = calloc(ncap, sizeof(Slot));
    cap = ncap; count = 0; tombs = 0;
    for (size_t i = 0; i < ocap; i++)
        if (old[i].used == 1) put(old[i].key, old[i].val);
    free(old);
}

static Slot *find(const char *key, uint64_t h) {
    size_t i = h & (cap - 1);
    for (;;) {
        Slot *s = &slots[i];
        if (s->used == 0) return s;
        if (s->used == 1 && s->hash == h && strcmp(s->key, key) == 0) return s;
        i = (i + 1) & (cap - 1);
    }
}

static void put(char *key, char *val) {
    if ((count + tombs + 1) * 4 > cap * 3) grow(cap * 2);
    uint64_t h = hash_str(key);
    Slot *s = find(key, h);
    if (s->used == 1) { free(s->val); free(key); s->val = val; return; }
    s->key = key; s->val = val; s->hash = h; s->used = 1; count++;
}

static const char *get(const char *key) {
    Slot *s = find(key, hash_str(key));
    return s->used == 1 ? s->val : NULL;
}

static int del(const char *key) {
    Slot *s = find(key, hash_str(key));
    if (s->used != 1) return 0;
    free(s->key); free(s->val); s->key = s->val = NULL; s->used = 2; count--; tombs++;
    return 1;
}

static char *fmt(const char *prefix, uint64_t n) {
    char buf[64];
    int len = snprintf(buf, sizeof buf, "%s-%llu", prefix, (unsigned long long)n);
    char *p = malloc(len + 1);
    memcpy(p, buf, len + 1);
    return p;
}

int main(int argc, char **argv) {
    int scale = bench_start(argc, argv);
    uint64_t h = FNV_START;
    for (int r = 0; r < scale; r++) {
        cap = 16; count = 0; tombs = 0;
        slots = calloc(cap, sizeof(Slot));
        const int n = 60000;
        for (int i = 0; i < n; i++) put(fmt("key", rng_next() % (2 * n)), fmt("value", i));
        uint64_t hits = 0;
        for (int i = 0; i < 4 * n; i++) {
            char key[32];
            snprintf(key, sizeof key, "key-%llu", (unsigned long long)(rng_next() % (2 * n)));
            const char *v = get(key);
            if (v) hits += strlen(v);
            if (i % 3 == 0) del(key);
            else if (i % 3 == 1) put(fmt("key", rng_next() % (2 * n)), fmt("again", i));
        }
        if (tombs > count) grow(cap);
        h = fnv(&hits, sizeof hits, h);
        h = fnv(&count, sizeof count, h);
        for (size_t i = 0; i < cap; i++)
            if (slots[i].used == 1) { free(slots[i].key); free(slots[i].val); }
        free(slots);
    }
    report("kv", h);
    return 0;
}
