/* Shared by the kernels' translation units (not exported): the fixed-order accumulation width,
   the reductions the norms and softmax share, the vectorised exp, checked allocation, and the
   8- and 4-float vectors with their loads, stores and shuffles. Everything here is static inline. */
#ifndef LETHE_KERNELS_INTERNAL_H
#define LETHE_KERNELS_INTERNAL_H

#include "CShims.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Memory-bound float32 kernels of the tensor core. Every sum runs over eight interleaved partial
   accumulators combined in a fixed order: the arithmetic is spelled out, so compilers may vectorise
   it without reassociating, and the bits depend on neither the compiler's choices nor the thread
   count (callers split work into fixed chunks). */

#define LANES 8

/* The vector registers the build may use (isa_avx512.c: 32), which sizes some register tiles. */
#ifndef LETHE_VECTOR_REGISTERS
#define LETHE_VECTOR_REGISTERS 16
#endif

static inline float sum_sq_dev(const float *x, size_t n, float c) {
    float acc[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++) { float d = x[i + k] - c; acc[k] += d * d; }
    for (int k = 0; i < n; i++, k++) { float d = x[i] - c; acc[k] += d * d; }
    return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

/* sum a * b */
static inline float dot(const float *a, const float *b, size_t n) {
    float acc[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++) acc[k] += a[i + k] * b[i + k];
    for (int k = 0; i < n; i++, k++) acc[k] += a[i] * b[i];
    return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

/* max of x (n >= 1): eight lanes so the loop vectorises (a running `>` select over one lane does
   not); max is exact and order-free, so the value is the scalar loop's, NaNs skipped alike. */
static inline float row_max(const float *x, size_t n) {
    float acc[LANES];
    for (int k = 0; k < LANES; k++) acc[k] = -INFINITY;
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++) acc[k] = x[i + k] > acc[k] ? x[i + k] : acc[k];
    for (int k = 0; i < n; i++, k++) acc[k] = x[i] > acc[k] ? x[i] : acc[k];
    float m = acc[0];
    for (int k = 1; k < LANES; k++) m = acc[k] > m ? acc[k] : m;
    return m;
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

/* ---- vectors of 8 and 4 floats (GCC vector extensions) ---- */


/* Checked allocation, in llm.c's manner: the kernels cannot return an error, and running on with a NULL
   buffer would corrupt memory, so a failed allocation stops the process with where and how much.
   (The planner refuses runs whose estimated memory exceeds the machine's, so this is a last resort.) */
static inline void *checked_alloc(size_t count, size_t size, int zeroed, const char *file, int line) {
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

#endif
