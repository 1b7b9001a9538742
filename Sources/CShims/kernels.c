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

/* sum (a - b)^2, in the same eight partials as lethe_sum */
float lethe_sum_squared_difference(const float *a, const float *b, size_t n) {
    float acc[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++) { float d = a[i + k] - b[i + k]; acc[k] += d * d; }
    for (int k = 0; i < n; i++, k++) { float d = a[i] - b[i]; acc[k] += d * d; }
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

/* ---- vectors of 8 and 4 floats (GCC vector extensions) ---- */

#include <stdio.h>
#include <stdlib.h>

/* Checked allocation, in llm.c's manner: the kernels cannot return an error, and running on with a NULL
   buffer would corrupt memory, so a failed allocation stops the process with where and how much.
   (The planner refuses runs whose estimated memory exceeds the machine's, so this is a last resort.) */
static void *checked_alloc(size_t count, size_t size, int zeroed, const char *file, int line) {
    void *p = zeroed ? calloc(count, size) : malloc(count * size);
    if (!p && count && size) {
        fprintf(stderr, "lethe: out of memory allocating %zu bytes (%s:%d)\n", count * size, file, line);
        abort();
    }
    return p;
}
#define mallocCheck(bytes) checked_alloc(1, (bytes), 0, __FILE__, __LINE__)
#define callocCheck(count, size) checked_alloc((count), (size), 1, __FILE__, __LINE__)

typedef float v8f __attribute__((vector_size(32)));
typedef float v4f __attribute__((vector_size(16)));
/* Debug builds compile without AVX; the helpers taking v8f are static, so no ABI crosses a boundary. */
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wpsabi"
#endif

static inline v8f load8(const float *p) { v8f v; memcpy(&v, p, sizeof v); return v; }
static inline void store8(float *p, v8f v) { memcpy(p, &v, sizeof v); }
static inline v4f load4(const float *p) { v4f v; memcpy(&v, p, sizeof v); return v; }
static inline void store4(float *p, v4f v) { memcpy(p, &v, sizeof v); }
static inline v8f splat8(float x) { return (v8f){x, x, x, x, x, x, x, x}; }
static inline float hsum8(v8f a) {
    return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
}
static inline size_t roundup8(size_t n) { return (n + 7) / 8 * 8; }

/* The 4x4 transpose of the rows a, b, c, d, in place. */
static inline void transpose4(v4f *a, v4f *b, v4f *c, v4f *d) {
    v4f t0 = __builtin_shufflevector(*a, *b, 0, 4, 1, 5), t1 = __builtin_shufflevector(*a, *b, 2, 6, 3, 7);
    v4f t2 = __builtin_shufflevector(*c, *d, 0, 4, 1, 5), t3 = __builtin_shufflevector(*c, *d, 2, 6, 3, 7);
    *a = __builtin_shufflevector(t0, t2, 0, 1, 4, 5); *b = __builtin_shufflevector(t0, t2, 2, 3, 6, 7);
    *c = __builtin_shufflevector(t1, t3, 0, 1, 4, 5); *d = __builtin_shufflevector(t1, t3, 2, 3, 6, 7);
}

/* The four column phases of the 32 floats at s: p[φ][q] = s[4 q + φ], q < 8. */
static inline void phases8(const float *s, v8f p[4]) {
    v8f a = load8(s), b = load8(s + 8), c = load8(s + 16), d = load8(s + 24);
    v8f ab0 = __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14), ab1 = __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15);
    v8f cd0 = __builtin_shufflevector(c, d, 0, 2, 4, 6, 8, 10, 12, 14), cd1 = __builtin_shufflevector(c, d, 1, 3, 5, 7, 9, 11, 13, 15);
    p[0] = __builtin_shufflevector(ab0, cd0, 0, 2, 4, 6, 8, 10, 12, 14);
    p[1] = __builtin_shufflevector(ab1, cd1, 0, 2, 4, 6, 8, 10, 12, 14);
    p[2] = __builtin_shufflevector(ab0, cd0, 1, 3, 5, 7, 9, 11, 13, 15);
    p[3] = __builtin_shufflevector(ab1, cd1, 1, 3, 5, 7, 9, 11, 13, 15);
}

/* The same for the 16 floats at s: p[φ][q] = s[4 q + φ], q < 4. */
static inline void phases4(const float *s, v4f p[4]) {
    p[0] = load4(s); p[1] = load4(s + 4); p[2] = load4(s + 8); p[3] = load4(s + 12);
    transpose4(&p[0], &p[1], &p[2], &p[3]);
}

/* p[φ ps + q] = src[4 q + φ] for q < n: a row split into its four column phases. */
static void deinterleave4(const float *src, float *p, size_t ps, size_t n) {
    size_t q = 0;
    for (; q + 8 <= n; q += 8) {
        v8f ph[4];
        phases8(src + 4 * q, ph);
        for (int f = 0; f < 4; f++) store8(p + f * ps + q, ph[f]);
    }
    for (; q + 4 <= n; q += 4) {
        v4f ph[4];
        phases4(src + 4 * q, ph);
        for (int f = 0; f < 4; f++) store4(p + f * ps + q, ph[f]);
    }
    for (; q < n; q++) { p[q] = src[4 * q]; p[ps + q] = src[4 * q + 1]; p[2 * ps + q] = src[4 * q + 2]; p[3 * ps + q] = src[4 * q + 3]; }
}

/* dst[k] = p[(k % 4) ps + k / 4] for k < count: a row from its four column phases. */
static void interleave4(const float *p, size_t ps, float *dst, size_t count) {
    size_t q = 0;
    for (; 4 * (q + 8) <= count; q += 8) {
        v8f x = load8(p + q), y = load8(p + ps + q), z = load8(p + 2 * ps + q), w = load8(p + 3 * ps + q);
        v8f xzl = __builtin_shufflevector(x, z, 0, 8, 1, 9, 2, 10, 3, 11), xzh = __builtin_shufflevector(x, z, 4, 12, 5, 13, 6, 14, 7, 15);
        v8f ywl = __builtin_shufflevector(y, w, 0, 8, 1, 9, 2, 10, 3, 11), ywh = __builtin_shufflevector(y, w, 4, 12, 5, 13, 6, 14, 7, 15);
        store8(dst + 4 * q, __builtin_shufflevector(xzl, ywl, 0, 8, 1, 9, 2, 10, 3, 11));
        store8(dst + 4 * q + 8, __builtin_shufflevector(xzl, ywl, 4, 12, 5, 13, 6, 14, 7, 15));
        store8(dst + 4 * q + 16, __builtin_shufflevector(xzh, ywh, 0, 8, 1, 9, 2, 10, 3, 11));
        store8(dst + 4 * q + 24, __builtin_shufflevector(xzh, ywh, 4, 12, 5, 13, 6, 14, 7, 15));
    }
    for (; 4 * (q + 4) <= count; q += 4) {
        v4f a = load4(p + q), b = load4(p + ps + q), c = load4(p + 2 * ps + q), d = load4(p + 3 * ps + q);
        transpose4(&a, &b, &c, &d);
        store4(dst + 4 * q, a); store4(dst + 4 * q + 4, b); store4(dst + 4 * q + 8, c); store4(dst + 4 * q + 12, d);
    }
    for (size_t k = 4 * q; k < count; k++) dst[k] = p[(k % 4) * ps + k / 4];
}

/* ---- Winograd F(4x4, 3x3) transforms (see Winograd.swift for the maths) ----
   Layouts: v[ξ][c][tile], m and dm [ξ][o][tile], ξ = 6 i + j over the 6x6 transformed tile, tile =
   (image th + ty) tw + tx, so the tiles of one image plane are contiguous in every ξ. Images are
   small (2 to 8 tiles a row), so the transforms run in explicit vectors: the input's a row of tiles
   at a time (rows of the image combined whole, then split into their four column phases by shuffles
   in vectors of 8 or 4 tiles: tile tx starts at column 4 tx and reads phases 0-3 of its own columns
   and phases 0-1 of tile tx + 1's), the output's and the output gradient's a plane at a time, 8
   tiles per vector, through the column phases of the plane's rows. The 1-D transforms, on a column
   of 6 (or 4) values:
     B^T d: 4d0 - 5d2 + d4, -4d1 - 4d2 + d3 + d4, 4d1 - 4d2 - d3 + d4, -2d1 - d2 + 2d3 + d4,
            2d1 - d2 - 2d3 + d4, 4d1 - 5d3 + d5
     A^T m: m0 + m1 + m2 + m3 + m4, m1 - m2 + 2m3 - 2m4, m1 + m2 + 4m3 + 4m4, m1 - m2 + 8m3 - 8m4 + m5
     A a:   a0, a0 + a1 + a2 + a3, a0 - a1 + a2 - a3, a0 + 2a1 + 4a2 + 8a3, a0 - 2a1 + 4a2 - 8a3, a3
   The macros work on floats and on vectors alike. */

#define WINO_BT(T, d0, d1, d2, d3, d4, d5, o0, o1, o2, o3, o4, o5)                     \
    {                                                                                   \
        T s13 = (d4) - 4.0f * (d2), s24 = (d3) - 4.0f * (d1);                            \
        T s57 = (d4) - (d2), s68 = 2.0f * ((d3) - (d1));                                 \
        o0 = 4.0f * (d0) - 5.0f * (d2) + (d4);                                          \
        o1 = s13 + s24; o2 = s13 - s24;                                                 \
        o3 = s57 + s68; o4 = s57 - s68;                                                 \
        o5 = 4.0f * (d1) - 5.0f * (d3) + (d5);                                          \
    }

#define WINO_AT(T, m0, m1, m2, m3, m4, m5, y0, y1, y2, y3)                              \
    {                                                                                   \
        T p12 = (m1) + (m2), d12 = (m1) - (m2), p34 = (m3) + (m4), d34 = (m3) - (m4);      \
        y0 = (m0) + p12 + p34;                                                          \
        y1 = d12 + 2.0f * d34;                                                          \
        y2 = p12 + 4.0f * p34;                                                          \
        y3 = d12 + 8.0f * d34 + (m5);                                                   \
    }

#define WINO_A(T, a0, a1, a2, a3, r0, r1, r2, r3, r4, r5)                               \
    {                                                                                   \
        T e = (a0) + (a2), o = (a1) + (a3), e4 = (a0) + 4.0f * (a2), o4 = 2.0f * (a1) + 8.0f * (a3); \
        r0 = (a0); r1 = e + o; r2 = e - o; r3 = e4 + o4; r4 = e4 - o4; r5 = (a3);      \
    }

#define SCALAR_LOAD(p) (*(p))
#define SCALAR_STORE(p, x) (*(p) = (x))

/* One step of the input's row transform at column k: six image rows r0-r5 to t0[j width + k]. */
#define INPUT_ROWS(T, LOAD, STORE, k)                                                    \
    {                                                                                   \
        T o0, o1, o2, o3, o4, o5;                                                       \
        WINO_BT(T, LOAD(r0 + (k)), LOAD(r1 + (k)), LOAD(r2 + (k)), LOAD(r3 + (k)), LOAD(r4 + (k)), LOAD(r5 + (k)), \
                o0, o1, o2, o3, o4, o5);                                                \
        STORE(t0 + (k), o0); STORE(t0 + width + (k), o1); STORE(t0 + 2 * width + (k), o2); \
        STORE(t0 + 3 * width + (k), o3); STORE(t0 + 4 * width + (k), o4); STORE(t0 + 5 * width + (k), o5); \
    }

/* The column transform of the tiles from tx on (one per lane), given their six columns d0-d5. */
#define INPUT_COLUMNS(T, STORE, d0, d1, d2, d3, d4, d5)                                 \
    {                                                                                   \
        T o0, o1, o2, o3, o4, o5;                                                       \
        WINO_BT(T, d0, d1, d2, d3, d4, d5, o0, o1, o2, o3, o4, o5);                     \
        STORE(o + tx, o0); STORE(o + os + tx, o1); STORE(o + 2 * os + tx, o2);           \
        STORE(o + 3 * os + tx, o3); STORE(o + 4 * os + tx, o4); STORE(o + 5 * os + tx, o5); \
    }

void lethe_winograd_input(const float *x, size_t images, size_t c, size_t h, size_t w, size_t pad,
                          size_t th, size_t tw, float *v) {
    /* t: the six row transforms of every row of tiles of a plane (row ty, transform i at (6 ty + i)
       width), zero-padded: >= pad + w + pad columns, and the first two columns of a tile beyond the
       last. All rows are combined before any is split, so that the shuffles' loads never wait on the
       (differently aligned) stores that wrote them. */
    size_t tiles = images * th * tw, width = 4 * tw + 4, os = c * tiles;
    float *t = callocCheck(6 * th * width + w, sizeof(float));
    const float *zero = t + 6 * th * width;                 /* a row of w zeros above and below */
    for (size_t b = 0; b < images; b++)
    for (size_t ci = 0; ci < c; ci++) {
        const float *plane = x + (b * c + ci) * h * w;
        for (size_t ty = 0; ty < th; ty++) {           /* B^T d over rows, straight from the image */
            const float *r[6];
            for (int i = 0; i < 6; i++) {
                long y = (long)(4 * ty + i) - (long)pad;
                r[i] = (y >= 0 && y < (long)h) ? plane + y * (long)w : zero;
            }
            const float *r0 = r[0], *r1 = r[1], *r2 = r[2], *r3 = r[3], *r4 = r[4], *r5 = r[5];
            float *t0 = t + 6 * ty * width + pad;
            size_t k = 0;
            for (; k + 8 <= w; k += 8) INPUT_ROWS(v8f, load8, store8, k);
            for (; k < w; k++) INPUT_ROWS(float, SCALAR_LOAD, SCALAR_STORE, k);
        }
        for (size_t ty = 0; ty < th; ty++)
        for (int i = 0; i < 6; i++) {                   /* (B^T d) B over columns, 8, 4 or 1 tiles at a time */
            const float *ti = t + (6 * ty + i) * width;
            float *o = v + ((size_t)(6 * i) * c + ci) * tiles + (b * th + ty) * tw;
            size_t tx = 0;
            for (; tx + 8 <= tw; tx += 8) {
                const float *s = ti + 4 * tx;
                v8f p[4];
                phases8(s, p);
                v8f p4 = __builtin_shufflevector(p[0], splat8(s[32]), 1, 2, 3, 4, 5, 6, 7, 8);   /* the next tiles' */
                v8f p5 = __builtin_shufflevector(p[1], splat8(s[33]), 1, 2, 3, 4, 5, 6, 7, 8);
                INPUT_COLUMNS(v8f, store8, p[0], p[1], p[2], p[3], p4, p5);
            }
            for (; tx + 4 <= tw; tx += 4) {
                const float *s = ti + 4 * tx;
                v4f p[4];
                phases4(s, p);
                v4f p4 = __builtin_shufflevector(p[0], (v4f){s[16], s[16], s[16], s[16]}, 1, 2, 3, 4);
                v4f p5 = __builtin_shufflevector(p[1], (v4f){s[17], s[17], s[17], s[17]}, 1, 2, 3, 4);
                INPUT_COLUMNS(v4f, store4, p[0], p[1], p[2], p[3], p4, p5);
            }
            for (; tx < tw; tx++) {
                const float *s = ti + 4 * tx;
                INPUT_COLUMNS(float, SCALAR_STORE, s[0], s[1], s[2], s[3], s[4], s[5]);
            }
        }
    }
    free(t);
}

/* One step of the output transform at tile k of the plane: M[ξ] = m[ξ ms + k] to the 4x4 outputs
   y[(4 i + φ) ys + k] (+ add). */
#define OUTPUT_TILES(T, LOAD, STORE, m, ms, y, ys, add, k)                               \
    {                                                                                   \
        T s[4][6];                                                                      \
        for (int j = 0; j < 6; j++)                                                     \
            WINO_AT(T, LOAD(m + j * (ms) + (k)), LOAD(m + (6 + j) * (ms) + (k)), LOAD(m + (12 + j) * (ms) + (k)), \
                    LOAD(m + (18 + j) * (ms) + (k)), LOAD(m + (24 + j) * (ms) + (k)), LOAD(m + (30 + j) * (ms) + (k)), \
                    s[0][j], s[1][j], s[2][j], s[3][j]);                               \
        for (int i = 0; i < 4; i++) {                                                   \
            T a, bb, cc, d;                                                             \
            WINO_AT(T, s[i][0], s[i][1], s[i][2], s[i][3], s[i][4], s[i][5], a, bb, cc, d); \
            STORE(y + (4 * i) * (ys) + (k), a + (add)); STORE(y + (4 * i + 1) * (ys) + (k), bb + (add)); \
            STORE(y + (4 * i + 2) * (ys) + (k), cc + (add)); STORE(y + (4 * i + 3) * (ys) + (k), d + (add)); \
        }                                                                               \
    }

void lethe_winograd_output(const float *m, size_t images, size_t o, size_t ho, size_t wo,
                           size_t th, size_t tw, const float *bias, float *out) {
    size_t tiles = images * th * tw, n = th * tw;
    float *y = mallocCheck(16 * n * sizeof(float));              /* y[(4 i + φ) n + tile]: row i, phase φ */
    for (size_t b = 0; b < images; b++)
    for (size_t oc = 0; oc < o; oc++) {
        float *plane = out + (b * o + oc) * ho * wo;
        float add = bias ? bias[oc] : 0.0f;
        const float *mp = m + oc * tiles + b * n;
        size_t ms = o * tiles, k = 0;
        v8f add8 = splat8(add);
        for (; k + 8 <= n; k += 8) OUTPUT_TILES(v8f, load8, store8, mp, ms, y, n, add8, k);
        for (; k < n; k++) OUTPUT_TILES(float, SCALAR_LOAD, SCALAR_STORE, mp, ms, y, n, add, k);
        for (size_t ty = 0; ty < th; ty++)
            for (size_t i = 0; i < 4 && 4 * ty + i < ho; i++) interleave4(y + 4 * i * n + ty * tw, n, plane + (4 * ty + i) * wo, wo);
    }
    free(y);
}

/* One step of the output gradient's transform at tile k: dY row i in phases g[(4 i + φ) gs + k], to
   dm[ξ ds + k]. */
#define OUTPUT_GRADIENT_TILES(T, LOAD, STORE, g, gs, d, ds, k)                           \
    {                                                                                   \
        T r[6][4];                                                                      \
        for (int j = 0; j < 4; j++)                                                     \
            WINO_A(T, LOAD(g + j * (gs) + (k)), LOAD(g + (4 + j) * (gs) + (k)), LOAD(g + (8 + j) * (gs) + (k)), \
                   LOAD(g + (12 + j) * (gs) + (k)), r[0][j], r[1][j], r[2][j], r[3][j], r[4][j], r[5][j]); \
        for (int l = 0; l < 6; l++) {                                                   \
            T z0, z1, z2, z3, z4, z5;                                                   \
            WINO_A(T, r[l][0], r[l][1], r[l][2], r[l][3], z0, z1, z2, z3, z4, z5);      \
            STORE(d + (6 * l) * (ds) + (k), z0); STORE(d + (6 * l + 1) * (ds) + (k), z1); \
            STORE(d + (6 * l + 2) * (ds) + (k), z2); STORE(d + (6 * l + 3) * (ds) + (k), z3); \
            STORE(d + (6 * l + 4) * (ds) + (k), z4); STORE(d + (6 * l + 5) * (ds) + (k), z5); \
        }                                                                               \
    }

void lethe_winograd_output_gradient(const float *g, size_t images, size_t o, size_t ho, size_t wo,
                                    size_t th, size_t tw, float *dm) {
    size_t tiles = images * th * tw, n = th * tw;
    float *row = callocCheck(4 * tw + 16 * n, sizeof(float));    /* a zero-padded row of dY, then its phases */
    float *q = row + 4 * tw;                                /* q[(4 i + φ) n + tile]: row i, phase φ */
    for (size_t b = 0; b < images; b++)
    for (size_t oc = 0; oc < o; oc++) {
        const float *plane = g + (b * o + oc) * ho * wo;
        for (size_t ty = 0; ty < th; ty++)
            for (size_t i = 0; i < 4; i++) {              /* dY rows, zero beyond the output */
                size_t y = 4 * ty + i;
                const float *src = plane + y * wo;
                if (y < ho && wo == 4 * tw) {
                    deinterleave4(src, q + 4 * i * n + ty * tw, n, tw);
                    continue;
                }
                for (size_t k = 0; k < 4 * tw; k++) row[k] = (y < ho && k < wo) ? src[k] : 0.0f;
                deinterleave4(row, q + 4 * i * n + ty * tw, n, tw);
            }
        float *d = dm + oc * tiles + b * n;
        size_t ds = o * tiles, k = 0;
        for (; k + 8 <= n; k += 8) OUTPUT_GRADIENT_TILES(v8f, load8, store8, q, n, d, ds, k);
        for (; k < n; k++) OUTPUT_GRADIENT_TILES(float, SCALAR_LOAD, SCALAR_STORE, q, n, d, ds, k);
    }
    free(row);
}

/* The kernel's transforms, vectorised over (o, c) pairs: U[ξ][pair] = (G g G^T)[ξ] for g = w[pair]
   (3x3), and back, dW[pair] = G^T dU G. G's rows are (1/4, 0, 0), (-1/6, -1/6, -1/6), (-1/6, 1/6, -1/6),
   (1/24, 1/12, 1/6), (1/24, -1/12, 1/6), (0, 0, 1). */
#define WINO_G(T, g0, g1, g2, u0, u1, u2, u3, u4, u5)                                   \
    {                                                                                   \
        T p02 = (g0) + (g2), a = (1.0f / 24) * (g0) + (1.0f / 6) * (g2), b = (1.0f / 12) * (g1); \
        u0 = 0.25f * (g0); u1 = (-1.0f / 6) * (p02 + (g1)); u2 = (-1.0f / 6) * (p02 - (g1)); \
        u3 = a + b; u4 = a - b; u5 = (g2);                                              \
    }

#define WINO_GT(T, u0, u1, u2, u3, u4, u5, s0, s1, s2)                                  \
    {                                                                                   \
        T p12 = (u1) + (u2), p34 = (u3) + (u4);                                         \
        s0 = 0.25f * (u0) - (1.0f / 6) * p12 + (1.0f / 24) * p34;                       \
        s1 = (1.0f / 6) * ((u2) - (u1)) + (1.0f / 12) * ((u3) - (u4));                  \
        s2 = (1.0f / 6) * (p34 - p12) + (u5);                                           \
    }

/* U for the 8 (or 1) pairs from p on: g[k] holds tap k of each. */
#define KERNEL_PAIRS(T, STORE, g, u, pairs, p)                                          \
    {                                                                                   \
        T t[6][3];                                                                      \
        for (int j = 0; j < 3; j++) WINO_G(T, g[j], g[3 + j], g[6 + j], t[0][j], t[1][j], t[2][j], t[3][j], t[4][j], t[5][j]); \
        for (int i = 0; i < 6; i++) {                                                   \
            T z[6];                                                                     \
            WINO_G(T, t[i][0], t[i][1], t[i][2], z[0], z[1], z[2], z[3], z[4], z[5]);   \
            for (int j = 0; j < 6; j++) STORE(u + (size_t)(6 * i + j) * (pairs) + (p), z[j]); \
        }                                                                               \
    }

void lethe_winograd_kernel(const float *w, size_t pairs, float *u) {
    size_t p = 0;
    for (; p + 8 <= pairs; p += 8) {
        v8f g[9];
        for (int k = 0; k < 9; k++)
            for (int l = 0; l < 8; l++) g[k][l] = w[9 * (p + l) + k];
        KERNEL_PAIRS(v8f, store8, g, u, pairs, p);
    }
    for (; p < pairs; p++) {
        const float *g = w + 9 * p;
        KERNEL_PAIRS(float, SCALAR_STORE, g, u, pairs, p);
    }
}

/* dW for the 8 (or 1) pairs from p on, into out[3 i + j] (vectors: one lane per pair). */
#define KERNEL_GRADIENT_PAIRS(T, LOAD, du, pairs, p, out)                               \
    {                                                                                   \
        T s[3][6];                                                                      \
        for (int j = 0; j < 6; j++)                                                     \
            WINO_GT(T, LOAD(du + (size_t)j * (pairs) + (p)), LOAD(du + (size_t)(6 + j) * (pairs) + (p)), \
                    LOAD(du + (size_t)(12 + j) * (pairs) + (p)), LOAD(du + (size_t)(18 + j) * (pairs) + (p)), \
                    LOAD(du + (size_t)(24 + j) * (pairs) + (p)), LOAD(du + (size_t)(30 + j) * (pairs) + (p)), \
                    s[0][j], s[1][j], s[2][j]);                                         \
        for (int i = 0; i < 3; i++)                                                     \
            WINO_GT(T, s[i][0], s[i][1], s[i][2], s[i][3], s[i][4], s[i][5], out[3 * i], out[3 * i + 1], out[3 * i + 2]); \
    }

void lethe_winograd_kernel_gradient(const float *du, size_t pairs, float *dw) {
    size_t p = 0;
    for (; p + 8 <= pairs; p += 8) {
        v8f out[9];
        KERNEL_GRADIENT_PAIRS(v8f, load8, du, pairs, p, out);
        for (int l = 0; l < 8; l++)
            for (int k = 0; k < 9; k++) dw[9 * (p + l) + k] = out[k][l];
    }
    for (; p < pairs; p++) KERNEL_GRADIENT_PAIRS(float, SCALAR_LOAD, du, pairs, p, (dw + 9 * p));
}

/* ---- direct convolution (few input channels, or stride > 1) ----
   The input of each image is packed once, zero-padded and split into `s` column phases:
   xp[b][ci][r][phase][j] = x[b][ci][r - p][j s + phase - p] (0 outside), for the rows r < rows =
   (ho - 1) s + kh that outputs read and j < width = roundup8(wo) + (kw - 1) / s. Output pixel (oy, ox)
   then reads tap (ki, kj) at row oy s + ki, phase kj % s, column ox + kj / s: for 8 consecutive outputs
   of a row that is 8 consecutive floats, whatever the stride. A register tile holds 4 output channels
   x 3 vectors of 8 output pixels (12 accumulators), fed per (channel, tap) by 3 loads and 4 weight
   broadcasts. Every output is summed over (ci, ki, kj) in that order, the bias added last. */

void lethe_direct_pack(const float *x, size_t images, size_t c, size_t h, size_t w, size_t s, size_t pad,
                       size_t kw, size_t rows, size_t wo, float *xp) {
    size_t width = roundup8(wo) + (kw - 1) / s, used = wo + (kw - 1) / s;   /* columns outputs read */
    /* each image row goes through a zero-padded copy, so the phase split below needs no bounds */
    size_t span = used * s > pad + w ? used * s : pad + w;
    float *padded = callocCheck(span, sizeof(float));
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
    size_t *toff = mallocCheck(2 * kk * sizeof(size_t)), *twt = toff + kk;
    float *wp = mallocCheck(blocks * c * kk * 4 * sizeof(float));
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
                    float *wq = mallocCheck(c * kk * 4 * sizeof(float));
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
    float *gk = mallocCheck(o * chan * sizeof(float));
    size_t *toff = mallocCheck(2 * kk * s * s * sizeof(size_t));
    float *wp = mallocCheck(blocks * o * kk * 4 * sizeof(float));          /* every class's packed weights */
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
    size_t *toff = mallocCheck(kk * sizeof(size_t));
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
