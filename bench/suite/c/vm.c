/* An interpreter loop: a stack bytecode machine with a switch dispatch, running programs
 * it builds itself (a counting loop with arithmetic, and recursive fibonacci via calls). */
#include <string.h>
#include "bench.h"

enum { PUSH, LOAD, STORE, ADD, SUB, MUL, MOD, LT, JZ, JMP, CALL, RET, ARG, DUP, POP, HALT };

static long run(const int *code, int entry, long arg) {
    long stack[4096], locals[64] = {0};
    int sp = 0, pc = entry, fp = 0;
    int frames[1024][2]; /* return pc, saved stack base for ARG */
    long args[1024];
    int depth = 0;
    args[0] = arg;
    for (;;) {
        int op = code[pc++];
        switch (op) {
        case PUSH: stack[sp++] = code[pc++]; break;
        case LOAD: stack[sp++] = locals[code[pc++]]; break;
        case STORE: locals[code[pc++]] = stack[--sp]; break;
        case ADD: sp--; stack[sp - 1] += stack[sp]; break;
        case SUB: sp--; stack[sp - 1] -= stack[sp]; break;
        case MUL: sp--; stack[sp - 1] *= stack[sp]; break;
        case MOD: sp--; stack[sp - 1] %= stack[sp]; break;
        case LT: sp--; stack[sp - 1] = stack[sp - 1] < stack[sp]; break;
        case JZ: { int t = code[pc++]; if (!stack[--sp]) pc = t; } break;
        case JMP: pc = code[pc]; break;
        case CALL:
            frames[depth][0] = pc + 1;
            frames[depth][1] = fp;
            depth++;
            args[depth] = stack[--sp];
            pc = code[pc];
            break;
        case RET:
            if (depth == 0) return stack[sp - 1];
            depth--;
            pc = frames[depth][0];
            fp = frames[depth][1];
            break;
        case ARG: stack[sp++] = args[depth]; break;
        case DUP: stack[sp] = stack[sp - 1]; sp++; break;
        case POP: sp--; break;
        case HALT: return sp ? stack[sp - 1] : 0;
        default: return -1;
        }
    }
}

int main(int argc, char **argv) {
    int scale = bench_start(argc, argv);
    /* loop: i = 0; acc = 0; while (i < n) { acc = (acc * 31 + i) % 1000003; i = i + 1 } */
    int loop[] = {PUSH, 0, STORE, 0, PUSH, 0, STORE, 1,
                  /* 8 */ LOAD, 0, ARG, LT, JZ, 36,
                  LOAD, 1, PUSH, 31, MUL, LOAD, 0, ADD, PUSH, 1000003, MOD, STORE, 1,
                  LOAD, 0, PUSH, 1, ADD, STORE, 0, JMP, 8,
                  /* 36 */ LOAD, 1, HALT};
    /* fib(n) = n < 2 ? n : fib(n-1) + fib(n-2) */
    int fib[] = {/* 0 */ ARG, PUSH, 2, LT, JZ, 8, ARG, RET,
                 /* 8 */ ARG, PUSH, 1, SUB, CALL, 0, ARG, PUSH, 2, SUB, CALL, 0, ADD, RET};
    uint64_t h = FNV_START;
    for (int r = 0; r < scale; r++) {
        long a = run(loop, 0, 3000000 + r);
        long b = run(fib, 0, 24);
        h = fnv(&a, sizeof a, h);
        h = fnv(&b, sizeof b, h);
    }
    report("vm", h);
    return 0;
}
