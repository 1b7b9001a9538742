#include "CShims.h"
#include <math.h>
#include <string.h>

/* Memory-bound float32 kernels of the tensor core. Every sum runs over eight interleaved partial
   accumulators combined in a fixed order: the arithmetic is spelled out, so compilers may vectorise
   it without reassociating, and the bits depend on neither the compiler's choices nor the thread
   count (callers split work into fixed chunks). */

#define LANES 8

float lethe_sum(const float *x, size_t n) {
    float acc[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++) acc[k] += x[i + k];
    for (int k = 0; i < n; i++, k++) acc[k] += x[i];
    return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

/* sum (x - c)^2 */
static float sum_sq_dev(const float *x, size_t n, float c) {
    float acc[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++) { float d = x[i + k] - c; acc[k] += d * d; }
    for (int k = 0; i < n; i++, k++) { float d = x[i] - c; acc[k] += d * d; }
    return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

/* sum a * b */
static float dot(const float *a, const float *b, size_t n) {
    float acc[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++) acc[k] += a[i + k] * b[i + k];
    for (int k = 0; i < n; i++, k++) acc[k] += a[i] * b[i];
    return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

void lethe_row_sums(const float *x, size_t rows, size_t n, float *out) {
    for (size_t r = 0; r < rows; r++) out[r] = lethe_sum(x + r * n, n);
}

void lethe_column_sums(const float *x, size_t rows, size_t n, float *out) {
    for (size_t r = 0; r < rows; r++) {
        const float *row = x + r * n;
        for (size_t j = 0; j < n; j++) out[j] += row[j];
    }
}

void lethe_add(float *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] += src[i];
}

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

/* ---- exp for activations ----
   exp(x) = 2^n * p(r), x = n ln2 + r, |r| <= ln2 / 2, with a degree-6 polynomial (about 1 ulp over
   the clamped range). Branch-free, so loops over it vectorise. */
static inline float vexpf(float x) {
    x = x < -87.3f ? -87.3f : (x > 88.3f ? 88.3f : x);
    float n = __builtin_roundevenf(x * 1.44269504088896341f);
    float r = x - n * 0.693359375f;         /* ln2 split in two for an exact first product */
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int e = (int)n + 127;
    union { int i; float f; } scale = { .i = e << 23 };
    return p * scale.f;
}

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
        float mx = -INFINITY;
        for (size_t j = 0; j < n; j++) mx = row[j] > mx ? row[j] : mx;
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

/* ---- im2col / col2im for one block of images ----
   cols[(ci, ki, kj)][(b, oy, ox)] = x[b][ci][oy s - p + ki][ox s - p + kj], 0 outside; rows of
   images * ho * wo columns. The runs are short (a row of the output), so the copies are written as
   plain loops rather than library calls. */

/* Output columns [lo, hi) whose input column ox s - p + kj lies inside 0..<w. */
static inline void valid_columns(long w, long wo, long s, long p, long kj, long *lo, long *hi) {
    long num = p - kj + s - 1;
    long l = num > 0 ? num / s : 0;
    long last = w - 1 + p - kj;
    long h = last >= 0 ? last / s + 1 : 0;
    if (h > wo) h = wo;
    if (h < l) h = l;
    *lo = l; *hi = h;
}

/* One traversal for both directions: adjoint = 0 writes the columns from the images (zeros in the
   padding), adjoint = 1 adds the columns back into the images' gradient. Called with a constant, so
   each direction compiles to its own loops. */
static inline __attribute__((always_inline, no_builtin("memcpy", "memset", "memmove")))
void im2col_pass(float *cols, float *x, size_t images, size_t c, size_t h, size_t w, size_t kh, size_t kw,
                 size_t stride, size_t pad, size_t ho, size_t wo, const int adjoint) {
    size_t hw = ho * wo, width = images * hw;
    long s = (long)stride, p = (long)pad;
    for (size_t b = 0; b < images; b++)
    for (size_t ci = 0; ci < c; ci++) {
        float *image = x + (b * c + ci) * h * w;
        for (size_t ki = 0; ki < kh; ki++)
        for (size_t kj = 0; kj < kw; kj++) {
            float *row = cols + ((ci * kh + ki) * kw + kj) * width + b * hw;
            long lo, hi;
            valid_columns((long)w, (long)wo, s, p, (long)kj, &lo, &hi);
            for (size_t oy = 0; oy < ho; oy++) {
                float *d = row + oy * wo;
                long iy = (long)oy * s - p + (long)ki;
                if (iy < 0 || iy >= (long)h || lo == hi) {
                    if (!adjoint) for (size_t j = 0; j < wo; j++) d[j] = 0.0f;
                    continue;
                }
                float *px = image + iy * (long)w + lo * s - p + (long)kj;
                long n = hi - lo;
                if (adjoint) {
                    if (s == 1) for (long j = 0; j < n; j++) px[j] += d[lo + j];
                    else if (s == 2) for (long j = 0; j < n; j++) px[2 * j] += d[lo + j];
                    else for (long j = 0; j < n; j++) px[j * s] += d[lo + j];
                } else {
                    for (long j = 0; j < lo; j++) d[j] = 0.0f;
                    /* a constant stride 2 lets the compiler vectorise by deinterleaving */
                    if (s == 1) for (long j = 0; j < n; j++) d[lo + j] = px[j];
                    else if (s == 2) for (long j = 0; j < n; j++) d[lo + j] = px[2 * j];
                    else for (long j = 0; j < n; j++) d[lo + j] = px[j * s];
                    for (long j = hi; j < (long)wo; j++) d[j] = 0.0f;
                }
            }
        }
    }
}

void lethe_im2col(const float *x, size_t images, size_t c, size_t h, size_t w, size_t kh, size_t kw,
                  size_t stride, size_t pad, size_t ho, size_t wo, float *dst) {
    im2col_pass(dst, (float *)x, images, c, h, w, kh, kw, stride, pad, ho, wo, 0);
}

void lethe_col2im(const float *cols, size_t images, size_t c, size_t h, size_t w, size_t kh, size_t kw,
                  size_t stride, size_t pad, size_t ho, size_t wo, float *gx) {
    im2col_pass((float *)cols, gx, images, c, h, w, kh, kw, stride, pad, ho, wo, 1);
}

/* ---- Winograd F(2x2, 3x3) transforms (see Winograd.swift for the maths) ----
   Each works a row of tiles at a time: the first stage combines whole image rows (contiguous), the
   second combines columns two apart (a constant stride the compiler vectorises), so the loops run
   over many tiles at once. Layouts: v[ξ][c][tile], m and dm [ξ][o][tile], tile = (image th + ty) tw + tx. */

#include <stdlib.h>

void lethe_winograd_input(const float *x, size_t images, size_t c, size_t h, size_t w, size_t pad,
                          size_t th, size_t tw, float *v) {
    size_t tiles = images * th * tw, width = 2 * tw + 2;   /* >= pad + w + pad: the padded row */
    float *rows = calloc(4 * width + w, sizeof(float));
    float *t[4] = {rows, rows + width, rows + 2 * width, rows + 3 * width};
    const float *zero = rows + 4 * width;                   /* a row of w zeros above and below */
    for (size_t b = 0; b < images; b++)
    for (size_t ci = 0; ci < c; ci++) {
        const float *plane = x + (b * c + ci) * h * w;
        for (size_t ty = 0; ty < th; ty++) {
            const float *r[4];
            for (int i = 0; i < 4; i++) {
                long y = (long)(2 * ty + i) - (long)pad;
                r[i] = (y >= 0 && y < (long)h) ? plane + y * (long)w : zero;
            }
            /* B^T d over rows, straight from the image; the padding columns of t stay zero */
            float *t0 = t[0] + pad, *t1 = t[1] + pad, *t2 = t[2] + pad, *t3 = t[3] + pad;
            const float *r0 = r[0], *r1 = r[1], *r2 = r[2], *r3 = r[3];
            for (size_t k = 0; k < w; k++) {
                float d0 = r0[k], d1 = r1[k], d2 = r2[k], d3 = r3[k];
                t0[k] = d0 - d2; t1[k] = d1 + d2; t2[k] = d2 - d1; t3[k] = d1 - d3;
            }
            size_t base = (b * th + ty) * tw;
            for (int i = 0; i < 4; i++) {                 /* (B^T d) B over columns */
                float *o0 = v + ((size_t)(4 * i) * c + ci) * tiles + base;
                float *o1 = v + ((size_t)(4 * i + 1) * c + ci) * tiles + base;
                float *o2 = v + ((size_t)(4 * i + 2) * c + ci) * tiles + base;
                float *o3 = v + ((size_t)(4 * i + 3) * c + ci) * tiles + base;
                const float *ti = t[i];
                for (size_t tx = 0; tx < tw; tx++) {
                    float a = ti[2 * tx], bb = ti[2 * tx + 1], cc = ti[2 * tx + 2], d = ti[2 * tx + 3];
                    o0[tx] = a - cc; o1[tx] = bb + cc; o2[tx] = cc - bb; o3[tx] = bb - d;
                }
            }
        }
    }
    free(rows);
}

void lethe_winograd_output(const float *m, size_t images, size_t o, size_t ho, size_t wo,
                           size_t th, size_t tw, const float *bias, float *out) {
    size_t tiles = images * th * tw;
    float *row = malloc(2 * (2 * tw) * sizeof(float));
    for (size_t b = 0; b < images; b++)
    for (size_t oc = 0; oc < o; oc++) {
        float *plane = out + (b * o + oc) * ho * wo;
        float add = bias ? bias[oc] : 0.0f;
        for (size_t ty = 0; ty < th; ty++) {
            size_t base = (b * th + ty) * tw;
            const float *mm[16];
            for (int xi = 0; xi < 16; xi++) mm[xi] = m + ((size_t)xi * o + oc) * tiles + base;
            float *y0 = row, *y1 = row + 2 * tw;
            for (size_t tx = 0; tx < tw; tx++) {
                float t0[4], t1[4];                         /* A^T M: 2x4 */
                for (int j = 0; j < 4; j++) {
                    float m0 = mm[j][tx], m1 = mm[4 + j][tx], m2 = mm[8 + j][tx], m3 = mm[12 + j][tx];
                    t0[j] = m0 + m1 + m2; t1[j] = m1 - m2 - m3;
                }
                y0[2 * tx] = t0[0] + t0[1] + t0[2] + add; y0[2 * tx + 1] = t0[1] - t0[2] - t0[3] + add;
                y1[2 * tx] = t1[0] + t1[1] + t1[2] + add; y1[2 * tx + 1] = t1[1] - t1[2] - t1[3] + add;
            }
            for (int i = 0; i < 2 && 2 * ty + i < ho; i++) {
                float *dst = plane + (2 * ty + i) * wo, *src = i ? y1 : y0;
                for (size_t k = 0; k < wo; k++) dst[k] = src[k];
            }
        }
    }
    free(row);
}

void lethe_winograd_output_gradient(const float *g, size_t images, size_t o, size_t ho, size_t wo,
                                    size_t th, size_t tw, float *dm) {
    size_t tiles = images * th * tw;
    float *rows = calloc(2 * (2 * tw), sizeof(float));
    for (size_t b = 0; b < images; b++)
    for (size_t oc = 0; oc < o; oc++) {
        const float *plane = g + (b * o + oc) * ho * wo;
        for (size_t ty = 0; ty < th; ty++) {
            float *r0 = rows, *r1 = rows + 2 * tw;
            for (int i = 0; i < 2; i++) {                 /* dY rows, zero beyond the output */
                float *r = i ? r1 : r0;
                size_t y = 2 * ty + i;
                for (size_t k = 0; k < 2 * tw; k++) r[k] = (y < ho && k < wo) ? plane[y * wo + k] : 0.0f;
            }
            size_t base = (b * th + ty) * tw;
            float *dd[16];
            for (int xi = 0; xi < 16; xi++) dd[xi] = dm + ((size_t)xi * o + oc) * tiles + base;
            for (size_t tx = 0; tx < tw; tx++) {
                float a = r0[2 * tx], bb = r0[2 * tx + 1], cc = r1[2 * tx], d = r1[2 * tx + 1];
                float rr[4][2] = {{a, bb}, {a + cc, bb + d}, {a - cc, bb - d}, {-cc, -d}};   /* A dY */
                for (int i = 0; i < 4; i++) {                                                 /* (A dY) A^T */
                    dd[4 * i][tx] = rr[i][0];
                    dd[4 * i + 1][tx] = rr[i][0] + rr[i][1];
                    dd[4 * i + 2][tx] = rr[i][0] - rr[i][1];
                    dd[4 * i + 3][tx] = -rr[i][1];
                }
            }
        }
    }
    free(rows);
}
