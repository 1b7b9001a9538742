#include "kernels_internal.h"

/* ---- normalisation over groups (layer norm and group norm share it) ----
   Group g is elements [g m, (g+1) m); element i belongs to channel (i / spatial) % channels, so a
   group is a sequence of runs of `spatial` elements sharing one channel (layer norm: spatial = 1 and
   m = channels, one channel per element). */

/* Calls BODY(start, length, channel) for each run of one channel inside group g. */
#define FOR_EACH_RUN(g, BODY)                                                           \
    do {                                                                                \
        size_t base_ = (g) * m, j_ = 0;                                                 \
        while (j_ < m) {                                                                \
            size_t i_ = base_ + j_;                                                     \
            size_t len_ = spatial - i_ % spatial;                                       \
            if (len_ > m - j_) len_ = m - j_;                                           \
            size_t c_ = (i_ / spatial) % channels;                                      \
            BODY(i_, len_, c_);                                                         \
            j_ += len_;                                                                 \
        }                                                                               \
    } while (0)

void lethe_norm_forward(const float *x, float *xhat, float *y, float *rstd, size_t g0, size_t g1,
                        size_t m, size_t spatial, size_t channels, const float *w, const float *b, float eps) {
    int per_element = spatial == 1 && m == channels;
    for (size_t g = g0; g < g1; g++) {
        const float *xs = x + g * m;
        float mean = lethe_sum(xs, m) / (float)m;
        float r = 1.0f / sqrtf(sum_sq_dev(xs, m, mean) / (float)m + eps);
        rstd[g] = r;
        float *xh = xhat + g * m, *ys = y + g * m;
        if (per_element) {
            for (size_t j = 0; j < m; j++) {
                float v = (xs[j] - mean) * r;
                xh[j] = v;
                ys[j] = v * (w ? w[j] : 1.0f) + (b ? b[j] : 0.0f);
            }
        } else {   /* xhat and y in one pass over each channel's run */
#define AFFINE(i, len, c)                                                               \
            {                                                                           \
                float wc = w ? w[c] : 1.0f, bc = b ? b[c] : 0.0f;                       \
                for (size_t k = 0; k < (len); k++) {                                    \
                    float v = (x[(i) + k] - mean) * r;                                  \
                    xhat[(i) + k] = v;                                                  \
                    y[(i) + k] = v * wc + bc;                                           \
                }                                                                       \
            }
            FOR_EACH_RUN(g, AFFINE);
#undef AFFINE
        }
    }
}

void lethe_norm_backward(const float *gy, const float *xhat, const float *rstd, const float *w,
                         float *dx, float *dw, float *db, size_t g0, size_t g1,
                         size_t m, size_t spatial, size_t channels) {
    int per_element = spatial == 1 && m == channels;
    for (size_t g = g0; g < g1; g++) {
        const float *gs = gy + g * m, *xh = xhat + g * m;
        if (per_element) {
            if (dw) for (size_t j = 0; j < m; j++) dw[j] += gs[j] * xh[j];
            if (db) for (size_t j = 0; j < m; j++) db[j] += gs[j];
        } else if (dw || db) {
#define CHANNEL_SUMS(i, len, c)                                                         \
            {                                                                           \
                if (dw) dw[c] += dot(gy + (i), xhat + (i), (len));                      \
                if (db) db[c] += lethe_sum(gy + (i), (len));                            \
            }
            FOR_EACH_RUN(g, CHANNEL_SUMS);
#undef CHANNEL_SUMS
        }
        if (!dx) continue;
        /* dx = rstd * (v - mean(v) - xhat * mean(v * xhat)), v = g * w[c] */
        float *d = dx + g * m;
        if (!w) {
            for (size_t j = 0; j < m; j++) d[j] = gs[j];
        } else if (per_element) {
            for (size_t j = 0; j < m; j++) d[j] = gs[j] * w[j];
        } else {
#define SCALE(i, len, c)                                                                \
            {                                                                           \
                float wc = w[c];                                                        \
                for (size_t k = 0; k < (len); k++) dx[(i) + k] = gy[(i) + k] * wc;      \
            }
            FOR_EACH_RUN(g, SCALE);
#undef SCALE
        }
        float meanD = lethe_sum(d, m) / (float)m, meanDX = dot(d, xh, m) / (float)m, r = rstd[g];
        for (size_t j = 0; j < m; j++) d[j] = r * (d[j] - meanD - xh[j] * meanDX);
    }
}
