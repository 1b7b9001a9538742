/* SiLU, GELU and softmax on float32, forward and backward, over the vectorised exp of
   kernels_internal.h. */
#include "kernels_internal.h"

float lethe_vexpf(float x) { return vexpf(x); }

void lethe_silu_forward(const float *x, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = x[i] / (1.0f + vexpf(-x[i]));
}

void lethe_silu_backward(const float *x, const float *g, float *dx, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float s = 1.0f / (1.0f + vexpf(-x[i]));
        dx[i] = g[i] * s * (1.0f + x[i] * (1.0f - s));
    }
}

/* erf by the same rational minimax approximation as Lethe's Swift Float.erf (within 1e-6 relative
   of libm on [-4, 4]; +-1 beyond), so the C and Swift paths agree. */
static inline float lethe_erff(float x) {
    float z = x < -4.0f ? -4.0f : (x > 4.0f ? 4.0f : x);
    float z2 = z * z;
    float p = -2.72614225801306e-10f;
    p = p * z2 + 2.77068142495902e-08f;
    p = p * z2 - 2.10102402082508e-06f;
    p = p * z2 - 5.69250639462346e-05f;
    p = p * z2 - 7.34990630326855e-04f;
    p = p * z2 - 2.95459980854025e-03f;
    p = p * z2 - 1.60960333262415e-02f;
    float q = -1.45660718464996e-05f;
    q = q * z2 - 2.13374055278905e-04f;
    q = q * z2 - 1.68282697438203e-03f;
    q = q * z2 - 7.37332916720468e-03f;
    q = q * z2 - 1.42647390514189e-02f;
    return z * p / q;
}

void lethe_gelu_forward(const float *x, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        y[i] = v * (1.0f + lethe_erff(v * 0.70710678118654752440f)) * 0.5f;
    }
}

void lethe_gelu_backward(const float *x, const float *g, float *dx, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        float cdf = (1.0f + lethe_erff(v * 0.70710678118654752440f)) * 0.5f;
        float pdf = 0.39894228040143267794f * vexpf(-0.5f * v * v);
        dx[i] = g[i] * (cdf + v * pdf);
    }
}

/* ---- softmax over rows ---- */

void lethe_softmax_rows(float *x, size_t rows, size_t n) {
    for (size_t r = 0; r < rows; r++) {
        float *row = x + r * n;
        float mx = row_max(row, n);
        for (size_t j = 0; j < n; j++) row[j] = vexpf(row[j] - mx);
        float z = 1.0f / lethe_sum(row, n);
        for (size_t j = 0; j < n; j++) row[j] *= z;
    }
}

void lethe_softmax_backward_rows(const float *y, const float *g, float *dx, size_t rows, size_t n, float scale) {
    for (size_t r = 0; r < rows; r++) {
        const float *yr = y + r * n, *gr = g + r * n;
        float *d = dx + r * n;
        float s = dot(gr, yr, n);
        for (size_t j = 0; j < n; j++) d[j] = scale * yr[j] * (gr[j] - s);
    }
}
