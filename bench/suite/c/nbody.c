/* Floating point: a gravitational n-body simulation (32 bodies, leapfrog steps). */
#include <math.h>
#include "bench.h"

#define N 32
static double px[N], py[N], pz[N], vx[N], vy[N], vz[N], m[N];

static double energy(void) {
    double e = 0;
    for (int i = 0; i < N; i++) {
        e += 0.5 * m[i] * (vx[i] * vx[i] + vy[i] * vy[i] + vz[i] * vz[i]);
        for (int j = i + 1; j < N; j++) {
            double dx = px[i] - px[j], dy = py[i] - py[j], dz = pz[i] - pz[j];
            e -= m[i] * m[j] / sqrt(dx * dx + dy * dy + dz * dz + 0.01);
        }
    }
    return e;
}

int main(int argc, char **argv) {
    int scale = bench_start(argc, argv);
    for (int i = 0; i < N; i++) {
        px[i] = (double)(rng_next() % 1000) / 100.0;
        py[i] = (double)(rng_next() % 1000) / 100.0;
        pz[i] = (double)(rng_next() % 1000) / 100.0;
        vx[i] = vy[i] = vz[i] = 0;
        m[i] = 1.0 + (double)(rng_next() % 100) / 50.0;
    }
    double dt = 0.001, e0 = energy();
    for (int s = 0; s < scale * 4000; s++) {
        for (int i = 0; i < N; i++) {
            double ax = 0, ay = 0, az = 0;
            for (int j = 0; j < N; j++) {
                if (j == i) continue;
                double dx = px[j] - px[i], dy = py[j] - py[i], dz = pz[j] - pz[i];
                double d2 = dx * dx + dy * dy + dz * dz + 0.01;
                double inv = m[j] / (d2 * sqrt(d2));
                ax += dx * inv; ay += dy * inv; az += dz * inv;
            }
            vx[i] += ax * dt; vy[i] += ay * dt; vz[i] += az * dt;
        }
        for (int i = 0; i < N; i++) {
            px[i] += vx[i] * dt; py[i] += vy[i] * dt; pz[i] += vz[i] * dt;
        }
    }
    double e1 = energy();
    /* Printed rounded: the checksum must not depend on the last bits. */
    report("nbody", (uint64_t)llround(e0 * 1000) ^ ((uint64_t)llround(e1 * 1000) << 20));
    return 0;
}
