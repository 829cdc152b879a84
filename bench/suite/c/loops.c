/* Vectorisable loops of the kind compilers are measured on: saxpy, dot products, a 2-D
 * stencil, prefix sums, a matrix multiply, a histogram. */
#include "bench.h"

#define L 4096
#define M 96
static float a[L], b[L], c[L];
static int ia[L], ib[L];
static double ma[M][M], mb[M][M], mc[M][M];
static float grid[2][130][130];

int main(int argc, char **argv) {
    int scale = bench_start(argc, argv);
    uint64_t h = FNV_START;
    for (int i = 0; i < L; i++) {
        a[i] = (float)(rng_next() % 1000) / 10.0f;
        b[i] = (float)(rng_next() % 1000) / 10.0f;
        ia[i] = (int)(rng_next() % 100000);
        ib[i] = (int)(rng_next() % 100000);
    }
    for (int i = 0; i < M; i++)
        for (int j = 0; j < M; j++) {
            ma[i][j] = (double)((i * 31 + j * 17) % 97) / 97.0;
            mb[i][j] = (double)((i * 13 + j * 7) % 89) / 89.0;
        }
    for (int r = 0; r < scale * 40; r++) {
        for (int k = 0; k < 50; k++) {
            for (int i = 0; i < L; i++) c[i] = 1.0001f * a[i] + b[i];
            float dot = 0;
            for (int i = 0; i < L; i++) dot += a[i] * c[i];
            int mx = 0;
            for (int i = 0; i < L; i++) {
                int v = ia[i] * 3 + ib[i];
                ia[i] = v % 100003;
                if (v > mx) mx = v;
            }
            for (int i = 1; i < L; i++) ib[i] = (ib[i - 1] + ib[i]) % 100003;
            h = fnv(&dot, sizeof dot, h);
            h = fnv(&mx, sizeof mx, h);
        }
        for (int i = 0; i < M; i++)
            for (int j = 0; j < M; j++) {
                double s = 0;
                for (int k = 0; k < M; k++) s += ma[i][k] * mb[k][j];
                mc[i][j] = s;
            }
        h = fnv(&mc[r % M][(r * 7) % M], sizeof(double), h);
        int from = r & 1, to = from ^ 1;
        for (int k = 0; k < 20; k++) {
            for (int i = 1; i < 129; i++)
                for (int j = 1; j < 129; j++)
                    grid[to][i][j] = 0.25f * (grid[from][i - 1][j] + grid[from][i + 1][j] +
                                              grid[from][i][j - 1] + grid[from][i][j + 1]) + 0.01f;
            from ^= 1; to ^= 1;
        }
        unsigned hist[256] = {0};
        for (int i = 0; i < L; i++) hist[ia[i] & 255]++;
        h = fnv(hist, sizeof hist, h);
    }
    h = fnv(grid, sizeof grid, h);
    report("loops", h);
    return 0;
}
