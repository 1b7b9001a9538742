#include "kernels_internal.h"

/* Column (de)interleaving of Winograd planes. */
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
        /* the next plane (the image is read once, from L3 or memory) while this one is transformed */
        for (size_t k = 0; k < h * w; k += 16) __builtin_prefetch(plane + h * w + k);
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
