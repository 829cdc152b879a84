// The C++ exception runtime this guest needs, written here because Debian's wasm32 libc++abi
// is built without exceptions (it has the type_info classes, which the guest links, but no
// __cxa_throw or personality). It follows the Wasm exception-handling ABI clang targets:
// - clang's landing pads (LLVM WasmEHPrepare) store the pad's index and its LSDA in
//   __wasm_lpad_context, call _Unwind_CallPersonality with the caught pointer, then compare
//   __wasm_lpad_context.selector with the catch clause's type-table index;
// - the LSDA (LLVM EHStreamer, Wasm flavour) is: lpStart encoding (omit), type-table encoding
//   and ULEB offset, call-site encoding, ULEB table length, then per landing pad a ULEB index
//   and a ULEB action offset (1-based into the action table); actions are SLEB type index
//   and SLEB offset to the next; type-table entries sit backwards from its end, 4 bytes each;
// - a C++ exception is thrown with tag 0 (__cpp_exception), its one value the pointer.
// Types match by identity or by name (no base classes: the test guest needs none).
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct type_info {
    const void *vtable;
    const char *name;
};

struct unwind_exception {
    uint64_t exception_class;
    void (*cleanup)(int, struct unwind_exception *);
    uint32_t private_1, private_2;
};

struct header {
    const struct type_info *type;
    void *(*destructor)(void *);
    int handlers;
    struct header *next_caught;
    struct unwind_exception unwind;
};

// What clang's landing pads and the personality share.
struct lpad_context {
    int lpad_index;
    const uint8_t *lsda;
    int selector;
};
struct lpad_context __wasm_lpad_context;

static _Thread_local struct header *caught;

// The object follows its header, 16-aligned.
#define HEADER_SIZE ((sizeof(struct header) + 15) & ~(size_t)15)

static struct header *header_of(void *object) {
    return (struct header *)((char *)object - HEADER_SIZE);
}

static struct header *from_unwind(void *unwind) {
    return (struct header *)((char *)unwind - offsetof(struct header, unwind));
}

void *__cxa_allocate_exception(size_t size) {
    char *block = aligned_alloc(16, (HEADER_SIZE + size + 15) & ~(size_t)15);
    if (!block) abort();
    memset(block, 0, HEADER_SIZE);
    return block + HEADER_SIZE;
}

void __cxa_free_exception(void *object) {
    free(header_of(object));
}

_Noreturn void __cxa_throw(void *object, const struct type_info *type, void *(*destructor)(void *)) {
    struct header *h = header_of(object);
    h->type = type;
    h->destructor = destructor;
    memcpy(&h->unwind.exception_class, "CLNGC++\0", 8);
    __builtin_wasm_throw(0, &h->unwind);
}

void *__cxa_begin_catch(void *unwind) {
    struct header *h = from_unwind(unwind);
    if (h->handlers++ == 0) {
        h->next_caught = caught;
        caught = h;
    }
    return (char *)h + HEADER_SIZE;
}

void __cxa_end_catch(void) {
    struct header *h = caught;
    if (!h || --h->handlers > 0) return;
    caught = h->next_caught;
    if (h->destructor) h->destructor((char *)h + HEADER_SIZE);
    free(h);
}

_Noreturn void __cxa_rethrow(void) {
    struct header *h = caught;
    if (!h) abort();
    // The handler that rethrows ends; the exception lives on for the next one.
    h->handlers--;
    caught = h->next_caught;
    __builtin_wasm_throw(0, &h->unwind);
}

static uintptr_t uleb(const uint8_t **p) {
    uintptr_t v = 0;
    unsigned shift = 0;
    uint8_t b;
    do {
        b = *(*p)++;
        v |= (uintptr_t)(b & 0x7f) << shift;
        shift += 7;
    } while (b & 0x80);
    return v;
}

static intptr_t sleb(const uint8_t **p) {
    intptr_t v = 0;
    unsigned shift = 0;
    uint8_t b;
    do {
        b = *(*p)++;
        v |= (intptr_t)(b & 0x7f) << shift;
        shift += 7;
    } while (b & 0x80);
    if (shift < 8 * sizeof(v) && (b & 0x40)) v |= -((intptr_t)1 << shift);
    return v;
}

static int same_type(const struct type_info *a, const struct type_info *b) {
    return a == b || strcmp(a->name, b->name) == 0;
}

// Sets the selector to the type index of the first catch clause of this landing pad that
// takes the exception (0 when none does: the pad only cleans up and rethrows).
int _Unwind_CallPersonality(void *unwind) {
    struct header *h = from_unwind(unwind);
    __wasm_lpad_context.selector = 0;
    const uint8_t *p = __wasm_lpad_context.lsda;
    if (!p) return 8; // _URC_CONTINUE_UNWIND
    if (*p++ != 0xff) abort(); // a landing-pad base: not emitted for Wasm
    uint8_t ttype_encoding = *p++;
    const uint8_t *types = 0;
    if (ttype_encoding != 0xff) {
        uintptr_t offset = uleb(&p);
        types = p + offset;
    }
    p++; // call-site encoding: ULEB
    uintptr_t length = uleb(&p);
    const uint8_t *actions = p + length;
    uintptr_t action = 0;
    while (p < actions) {
        uintptr_t index = uleb(&p);
        uintptr_t entry = uleb(&p);
        if ((int)index == __wasm_lpad_context.lpad_index) {
            action = entry;
            break;
        }
    }
    if (action == 0) return 8;
    const uint8_t *a = actions + action - 1;
    for (;;) {
        intptr_t type_index = sleb(&a);
        const uint8_t *here = a;
        intptr_t next = sleb(&a);
        if (type_index > 0 && types) {
            const struct type_info *t;
            memcpy(&t, types - type_index * 4, 4);
            if (!t || same_type(t, h->type)) {
                __wasm_lpad_context.selector = (int)type_index;
                return 6; // _URC_HANDLER_FOUND
            }
        }
        if (next == 0) return 8;
        a = here + next;
    }
}
