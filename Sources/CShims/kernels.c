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

/* ---- direct convolution (few input channels, or stride > 1) ----
   The input of each image is packed once, zero-padded and split into `s` column phases:
   xp[b][ci][r][phase][j] = x[b][ci][r - p][j s + phase - p] (0 outside), for the rows r < rows =
   (ho - 1) s + kh that outputs read and j < width = roundup8(wo) + (kw - 1) / s. Output pixel (oy, ox)
   then reads tap (ki, kj) at row oy s + ki, phase kj % s, column ox + kj / s: for 8 consecutive outputs
   of a row that is 8 consecutive floats, whatever the stride. A register tile holds 4 output channels
   x 3 vectors of 8 output pixels (12 accumulators), fed per (channel, tap) by 3 loads and 4 weight
   broadcasts. Every output is summed over (ci, ki, kj) in that order, the bias added last. */

typedef float v8f __attribute__((vector_size(32)));
/* Debug builds compile without AVX; the helpers taking v8f are static, so no ABI crosses a boundary. */
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wpsabi"
#endif

static inline v8f load8(const float *p) { v8f v; memcpy(&v, p, sizeof v); return v; }
static inline void store8(float *p, v8f v) { memcpy(p, &v, sizeof v); }
static inline v8f splat8(float x) { return (v8f){x, x, x, x, x, x, x, x}; }
static inline float hsum8(v8f a) {
    return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
}
static inline size_t roundup8(size_t n) { return (n + 7) / 8 * 8; }

void lethe_direct_pack(const float *x, size_t images, size_t c, size_t h, size_t w, size_t s, size_t pad,
                       size_t kw, size_t rows, size_t wo, float *xp) {
    size_t width = roundup8(wo) + (kw - 1) / s, used = wo + (kw - 1) / s;   /* columns outputs read */
    /* each image row goes through a zero-padded copy, so the phase split below needs no bounds */
    size_t span = used * s > pad + w ? used * s : pad + w;
    float *padded = calloc(span, sizeof(float));
    for (size_t bc = 0; bc < images * c; bc++) {
        const float *plane = x + bc * h * w;
        float *dst = xp + bc * rows * s * width;
        for (size_t r = 0; r < rows; r++) {
            long y = (long)r - (long)pad;
            float *d = dst + r * s * width;
            if (y < 0 || y >= (long)h) { for (size_t j = 0; j < s * width; j++) d[j] = 0.0f; continue; }
            memcpy(padded + pad, plane + y * (long)w, w * sizeof(float));   /* the margins stay zero */
            if (s == 1) {
                for (size_t j = 0; j < used; j++) d[j] = padded[j];
            } else if (s == 2) {
                float *d1 = d + width;
                for (size_t j = 0; j < used; j++) { d[j] = padded[2 * j]; d1[j] = padded[2 * j + 1]; }
            } else {
                for (size_t ph = 0; ph < s; ph++) for (size_t j = 0; j < used; j++) d[ph * width + j] = padded[j * s + ph];
            }
            for (size_t ph = 0; ph < s; ph++) for (size_t j = used; j < width; j++) d[ph * width + j] = 0.0f;
        }
    }
    free(padded);
}

/* The register tile shared by the forward pass and the input gradient: acc[q][v] = sum over source
   channels ci and taps t of wp[(ci ntaps + t) 4 + q] * src[ci chan + base[v] + toff[t] ..+8], for OB <= 4
   output channels and NV <= 3 vectors (12 accumulators, 3 loads and 4 broadcasts per channel and tap;
   the weights packed in the order they are used). Summed over (ci, t) in order. */
static inline __attribute__((always_inline))
void tile_accumulate(v8f acc[4][3], const float *src, size_t chan, size_t cin, const size_t *toff, size_t ntaps,
                     const float *wp, const size_t *base, const int OB, const int NV) {
    for (int q = 0; q < OB; q++) for (int v = 0; v < NV; v++) acc[q][v] = splat8(0.0f);
    const float *p0 = src + base[0], *p1 = src + base[NV > 1 ? 1 : 0], *p2 = src + base[NV > 2 ? 2 : 0];
    for (size_t ci = 0; ci < cin; ci++, p0 += chan, p1 += chan, p2 += chan) {
        for (size_t t = 0; t < ntaps; t++, wp += 4) {
            size_t off = toff[t];
            v8f in[3];
            in[0] = load8(p0 + off);
            if (NV > 1) in[1] = load8(p1 + off);
            if (NV > 2) in[2] = load8(p2 + off);
            for (int q = 0; q < OB; q++) {
                v8f wv = splat8(wp[q]);
                for (int v = 0; v < NV; v++) acc[q][v] += wv * in[v];
            }
        }
    }
}

/* wp[(ci ntaps + t) 4 + q] = weight[(q0 + q) qs + ci cs + twt[t]] for q < count (zeros after): the weights of
   one block of four output channels in the order a tile reads them. */
static void pack_tile_weights(const float *weight, size_t q0, size_t count, size_t qs, size_t cin, size_t cs,
                              const size_t *twt, size_t ntaps, float *wp) {
    for (size_t ci = 0; ci < cin; ci++)
    for (size_t t = 0; t < ntaps; t++, wp += 4)
    for (size_t q = 0; q < 4; q++) wp[q] = q < count ? weight[(q0 + q) * qs + ci * cs + twt[t]] : 0.0f;
}

/* One forward tile: output channels o0 ..< o0 + OB, pixel vectors pv0 ..< pv0 + NV of one image
   (vector pv: row pv / vpr, columns (pv % vpr) 8 ...). */
static inline __attribute__((always_inline))
void direct_tile(const float *xp, const float *wp, const float *bias, float *out, size_t c, size_t kk,
                 size_t s, size_t rows, size_t width, size_t wo, size_t hw, size_t o0, size_t pv0,
                 const size_t *toff, const int OB, const int NV) {
    size_t vpr = (wo + 7) / 8;
    size_t at[3], n[3], base[3];
    for (int v = 0; v < NV; v++) {
        size_t oy = (pv0 + v) / vpr, x0 = (pv0 + v) % vpr * 8;
        at[v] = oy * wo + x0;
        n[v] = wo - x0 < 8 ? wo - x0 : 8;
        base[v] = oy * s * s * width + x0;
    }
    v8f acc[4][3];
    tile_accumulate(acc, xp, rows * s * width, c, toff, kk, wp, base, OB, NV);
    for (int q = 0; q < OB; q++) {
        v8f add = splat8(bias ? bias[o0 + q] : 0.0f);
        float *plane = out + (o0 + q) * hw;
        for (int v = 0; v < NV; v++) {
            v8f r = acc[q][v] + add;
            if (n[v] == 8) store8(plane + at[v], r);
            else for (size_t l = 0; l < n[v]; l++) plane[at[v] + l] = r[l];
        }
    }
}

void lethe_direct_forward(const float *xp, size_t images, size_t c, size_t o, size_t kh, size_t kw, size_t s,
                          size_t rows, size_t ho, size_t wo, const float *weight, const float *bias, float *out) {
    size_t width = roundup8(wo) + (kw - 1) / s, hw = ho * wo, vectors = ho * ((wo + 7) / 8), kk = kh * kw;
    size_t blocks = (o + 3) / 4;
    size_t *toff = malloc(2 * kk * sizeof(size_t)), *twt = toff + kk;
    float *wp = malloc(blocks * c * kk * 4 * sizeof(float));
    for (size_t t = 0; t < kk; t++) {   /* tap (ki, kj): row ki, phase kj % s, column kj / s */
        toff[t] = ((t / kw) * s + (t % kw) % s) * width + (t % kw) / s;
        twt[t] = t;
    }
    for (size_t ob = 0; ob < blocks; ob++)
        pack_tile_weights(weight, 4 * ob, o - 4 * ob < 4 ? o - 4 * ob : 4, c * kk, c, kk, twt, kk, wp + ob * c * kk * 4);
    for (size_t b = 0; b < images; b++) {
        const float *xb = xp + b * c * rows * s * width;
        float *out_b = out + b * o * hw;
        for (size_t ob = 0; ob < blocks; ob++) {
            size_t o0 = 4 * ob, pv = 0;
            const float *w = wp + ob * c * kk * 4;
            if (o0 + 4 <= o) {
                for (; pv + 3 <= vectors; pv += 3) direct_tile(xb, w, bias, out_b, c, kk, s, rows, width, wo, hw, o0, pv, toff, 4, 3);
                for (; pv < vectors; pv++) direct_tile(xb, w, bias, out_b, c, kk, s, rows, width, wo, hw, o0, pv, toff, 4, 1);
            } else {   /* the last 1-3 channels: the padded block's extra rows are zeros, not stored */
                for (size_t q = 0; o0 + q < o; q++) {
                    float *wq = malloc(c * kk * 4 * sizeof(float));
                    for (size_t i = 0; i < c * kk; i++) { wq[4 * i] = w[4 * i + q]; wq[4 * i + 1] = wq[4 * i + 2] = wq[4 * i + 3] = 0.0f; }
                    for (pv = 0; pv + 3 <= vectors; pv += 3) direct_tile(xb, wq, bias, out_b, c, kk, s, rows, width, wo, hw, o0 + q, pv, toff, 1, 3);
                    for (; pv < vectors; pv++) direct_tile(xb, wq, bias, out_b, c, kk, s, rows, width, wo, hw, o0 + q, pv, toff, 1, 1);
                    free(wq);
                }
            }
        }
    }
    free(wp);
    free(toff);
}

/* ---- the input gradient of a strided convolution, directly ----
   In padded coordinates R = iy + p = s oy + ki. Split R = s A + rho and ki = rho + s m: rows of class rho
   take taps ki = rho, rho + s, ... from output rows A - m (columns alike, C = s B + sigma, kj = sigma + s n).
   So each of the s x s classes (rho, sigma) of input pixels is a stride-1 correlation of the output
   gradient with the class's taps, no product wasted on the zeros a dilated gradient would hold. The
   gradient is packed with M = (kh - 1) / s zero rows above (N zero columns left) and zeros beyond, so
   g[A - m][B - n] = gk[A + M - m][B + N - n]; a tile is 4 input channels x 3 vectors of 8 consecutive B,
   summed over output channels and taps; lanes are stored s apart. Every input pixel is in one class. */

static inline __attribute__((always_inline))
void gradient_tile(const float *gk, size_t o, size_t chan, size_t gw, const size_t *toff, size_t ntaps, const float *wp,
                   float *gx, size_t h, size_t w, size_t s, size_t pad, size_t rho, size_t sigma, size_t c0,
                   const size_t *rowA, const size_t *colB, const size_t *count, const int OB, const int NV) {
    size_t base[3];
    for (int v = 0; v < NV; v++) base[v] = rowA[v] * gw + colB[v];
    v8f acc[4][3];
    tile_accumulate(acc, gk, chan, o, toff, ntaps, wp, base, OB, NV);
    for (int q = 0; q < OB; q++) {
        float *plane = gx + (c0 + q) * h * w;
        for (int v = 0; v < NV; v++) {
            float *row = plane + (s * rowA[v] + rho - pad) * w + s * colB[v] + sigma - pad;
            for (size_t l = 0; l < count[v]; l++) row[l * s] = acc[q][v][l];
        }
    }
}

/* A tile of the last 1-3 input channels (computed as four, the padded weights zero), one vector. */
static void partial_gradient_tile(const float *gk, size_t o, size_t chan, size_t gw, const size_t *toff, size_t ntaps,
                                  const float *wp, float *gx, size_t h, size_t w, size_t s, size_t pad, size_t rho,
                                  size_t sigma, size_t c0, const size_t *rowA, const size_t *colB, const size_t *count, size_t live) {
    size_t base[3] = {rowA[0] * gw + colB[0], 0, 0};
    v8f acc[4][3];
    tile_accumulate(acc, gk, chan, o, toff, ntaps, wp, base, 4, 1);
    for (size_t q = 0; q < live; q++) {
        float *row = gx + (c0 + q) * h * w + (s * rowA[0] + rho - pad) * w + s * colB[0] + sigma - pad;
        for (size_t l = 0; l < count[0]; l++) row[l * s] = acc[q][0][l];
    }
}

void lethe_direct_input_gradient(const float *g, size_t images, size_t c, size_t h, size_t w, size_t o, size_t kh,
                                 size_t kw, size_t s, size_t pad, size_t ho, size_t wo, const float *weight, float *gx) {
    size_t M = (kh - 1) / s, N = (kw - 1) / s, kk = kh * kw, blocks = (c + 3) / 4;
    size_t amax = (pad + h - 1) / s, bmax = (pad + w - 1) / s;        /* the largest A and B of any class */
    size_t gh = amax + M + 1, gw = roundup8(bmax + 1) + N + 8, chan = gh * gw;
    float *gk = malloc(o * chan * sizeof(float));
    size_t *toff = malloc(2 * kk * s * s * sizeof(size_t));
    float *wp = malloc(blocks * o * kk * 4 * sizeof(float));          /* every class's packed weights */
    struct { size_t ntaps, *toff; float *wp; } cls[s * s];
    size_t used = 0;
    for (size_t rho = 0; rho < s; rho++)
    for (size_t sigma = 0; sigma < s; sigma++) {            /* the class's taps (rho + s m, sigma + s n) */
        size_t k = rho * s + sigma, n = 0, *to = toff + 2 * kk * k, *twt = to + kk;
        for (size_t ki = rho; ki < kh; ki += s)
        for (size_t kj = sigma; kj < kw; kj += s) {
            to[n] = (M - (ki - rho) / s) * gw + (N - (kj - sigma) / s);
            twt[n++] = ki * kw + kj;
        }
        cls[k].ntaps = n; cls[k].toff = to; cls[k].wp = wp + used;
        for (size_t cb = 0; cb < blocks; cb++)              /* source channels are o: w[oc][c0 + q][tap] */
            pack_tile_weights(weight, 4 * cb, c - 4 * cb < 4 ? c - 4 * cb : 4, kk, o, c * kk, twt, n, wp + used + cb * o * n * 4);
        used += blocks * o * n * 4;
    }
    for (size_t b = 0; b < images; b++) {
        const float *gb = g + b * o * ho * wo;
        for (size_t oc = 0; oc < o; oc++)                   /* gk[oc][M + y][N + x] = g[oc][y][x], zeros elsewhere */
        for (size_t r = 0; r < gh; r++) {
            float *d = gk + oc * chan + r * gw;
            long y = (long)r - (long)M;
            for (size_t j = 0; j < gw; j++) d[j] = 0.0f;
            if (y >= 0 && y < (long)ho) for (size_t j = 0; j < wo; j++) d[N + j] = gb[(oc * ho + y) * wo + j];
        }
        float *gxb = gx + b * c * h * w;
        for (size_t rho = 0; rho < s; rho++)
        for (size_t sigma = 0; sigma < s; sigma++) {
            size_t k = rho * s + sigma, ntaps = cls[k].ntaps;
            const size_t *to = cls[k].toff;
            /* the class's pixels: A with p <= s A + rho < p + h, B alike */
            size_t a0 = pad > rho ? (pad - rho + s - 1) / s : 0, b0 = pad > sigma ? (pad - sigma + s - 1) / s : 0;
            if (s * a0 + rho >= pad + h || s * b0 + sigma >= pad + w) continue;
            size_t a1 = (pad + h - 1 - rho) / s + 1, b1 = (pad + w - 1 - sigma) / s + 1;
            size_t per_row = (b1 - b0 + 7) / 8, vectors = (a1 - a0) * per_row;
            size_t rowA[3], colB[3], count[3];
            #define VEC(k, pv) do { rowA[k] = a0 + (pv) / per_row; colB[k] = b0 + (pv) % per_row * 8; \
                                   count[k] = b1 - colB[k] < 8 ? b1 - colB[k] : 8; } while (0)
            for (size_t cb = 0; cb < blocks; cb++) {
                size_t c0 = 4 * cb, pv = 0;
                const float *wcb = cls[k].wp + cb * o * ntaps * 4;
                if (c0 + 4 <= c) {
                    for (; pv + 3 <= vectors; pv += 3) { VEC(0, pv); VEC(1, pv + 1); VEC(2, pv + 2);
                        gradient_tile(gk, o, chan, gw, to, ntaps, wcb, gxb, h, w, s, pad, rho, sigma, c0, rowA, colB, count, 4, 3); }
                    for (; pv < vectors; pv++) { VEC(0, pv);
                        gradient_tile(gk, o, chan, gw, to, ntaps, wcb, gxb, h, w, s, pad, rho, sigma, c0, rowA, colB, count, 4, 1); }
                } else {
                    for (; pv < vectors; pv++) { VEC(0, pv); partial_gradient_tile(gk, o, chan, gw, to, ntaps, wcb, gxb, h, w, s, pad,
                                                                                   rho, sigma, c0, rowA, colB, count, c - c0); }
                }
            }
            #undef VEC
        }
    }
    free(wp);
    free(toff);
    free(gk);
}

/* The output gradient with each row zero-padded to a multiple of 8 columns: gp[b][o][oy][roundup8(wo)]. */
void lethe_direct_pack_gradient(const float *g, size_t images, size_t o, size_t ho, size_t wo, float *gp) {
    size_t wr = roundup8(wo);
    for (size_t r = 0; r < images * o * ho; r++) {
        const float *src = g + r * wo;
        float *d = gp + r * wr;
        for (size_t j = 0; j < wo; j++) d[j] = src[j];
        for (size_t j = wo; j < wr; j++) d[j] = 0.0f;
    }
}

/* One register tile of the weight gradient: output channels o0 ..< o0 + OB x taps t0 ..< t0 + NT of input
   channel ci (at most 4 x 2: eight accumulators, so nothing spills), summed over every pixel vector of
   every image in the block, 8 lanes per accumulator reduced in a fixed order at the end. Lanes beyond
   a row's end hold zero gradient. */
static inline __attribute__((always_inline))
void direct_weight_tile(const float *xp, const float *gp, float *dw, size_t images, size_t c, size_t o,
                        size_t kk, size_t s, size_t rows, size_t width, size_t ho, size_t wo,
                        size_t o0, size_t ci, size_t t0, const size_t *toff, const int OB, const int NT) {
    size_t wr = roundup8(wo), chan = rows * s * width, plane = ho * wr, step = s * s * width;
    v8f acc[4][2];
    for (int q = 0; q < OB; q++) for (int t = 0; t < NT; t++) acc[q][t] = splat8(0.0f);
    for (size_t b = 0; b < images; b++) {
        const float *x = xp + (b * c + ci) * chan, *g = gp + (b * o + o0) * plane;
        const float *x0 = x + toff[t0], *x1 = x + toff[t0 + (NT > 1)];
        for (size_t oy = 0; oy < ho; oy++, x0 += step, x1 += step, g += wr)
        for (size_t j = 0; j < wr; j += 8) {
            v8f in0 = load8(x0 + j), in1 = NT > 1 ? load8(x1 + j) : in0;
            for (int q = 0; q < OB; q++) {
                v8f gq = load8(g + q * plane + j);
                acc[q][0] += gq * in0;
                if (NT > 1) acc[q][1] += gq * in1;
            }
        }
    }
    for (int q = 0; q < OB; q++) for (int t = 0; t < NT; t++) dw[((o0 + q) * c + ci) * kk + t0 + t] = hsum8(acc[q][t]);
}

void lethe_direct_weight_gradient(const float *xp, const float *gp, size_t images, size_t c, size_t o, size_t kh,
                                  size_t kw, size_t s, size_t rows, size_t ho, size_t wo, float *dw) {
    size_t width = roundup8(wo) + (kw - 1) / s, kk = kh * kw;
    size_t *toff = malloc(kk * sizeof(size_t));
    for (size_t t = 0; t < kk; t++) toff[t] = ((t / kw) * s + (t % kw) % s) * width + (t % kw) / s;
    for (size_t ci = 0; ci < c; ci++) {
        size_t o0 = 0;
        for (; o0 + 4 <= o; o0 += 4) {
            size_t t = 0;
            for (; t + 2 <= kk; t += 2) direct_weight_tile(xp, gp, dw, images, c, o, kk, s, rows, width, ho, wo, o0, ci, t, toff, 4, 2);
            for (; t < kk; t++) direct_weight_tile(xp, gp, dw, images, c, o, kk, s, rows, width, ho, wo, o0, ci, t, toff, 4, 1);
        }
        for (; o0 < o; o0++) {
            size_t t = 0;
            for (; t + 2 <= kk; t += 2) direct_weight_tile(xp, gp, dw, images, c, o, kk, s, rows, width, ho, wo, o0, ci, t, toff, 1, 2);
            for (; t < kk; t++) direct_weight_tile(xp, gp, dw, images, c, o, kk, s, rows, width, ho, wo, o0, ci, t, toff, 1, 1);
        }
    }
    free(toff);
}
