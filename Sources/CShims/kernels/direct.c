#include "kernels_internal.h"

/* ---- direct convolution (few input channels, or stride > 1) ----
   The input of each image is packed once, zero-padded and split into `s` column phases:
   xp[b][ci][r][phase][j] = x[b][ci][r - p][j s + phase - p] (0 outside), for the rows r < rows =
   (ho - 1) s + kh that outputs read and j < width = roundup8(wo) + (kw - 1) / s. Output pixel (oy, ox)
   then reads tap (ki, kj) at row oy s + ki, phase kj % s, column ox + kj / s: for 8 consecutive outputs
   of a row that is 8 consecutive floats, whatever the stride. A register tile holds 4 output channels
   x TILE_VECTORS vectors of 8 output pixels (3 with 16 vector registers: 12 accumulators, fed per
   (channel, tap) by 3 loads and 4 weight broadcasts; 4 with AVX-512's 32: 16 accumulators, 4 loads),
   so a 16-wide output (two vectors a row) has no 1-vector tail tiles. Every output is summed over
   (ci, ki, kj) in that order, the bias added last, whatever the tile: its shape never changes a bit. */

#if LETHE_VECTOR_REGISTERS >= 32
#define TILE_VECTORS 4
#else
#define TILE_VECTORS 3
#endif

/* d[ph width + j] = row[j s + ph - pad], 0 outside the row. */
static inline void pack_column(const float *row, size_t w, size_t s, size_t pad, size_t width, size_t j, float *d) {
    for (size_t ph = 0; ph < s; ph++) {
        long q = (long)(j * s + ph) - (long)pad;
        d[ph * width + j] = q >= 0 && q < (long)w ? row[q] : 0.0f;
    }
}

/* One image row into its s phases: d[ph width + j] = row[j s + ph - pad] (0 outside the row) for j < used,
   zeros up to width. Read straight from the row, 8 outputs per phase at a time wherever all their
   sources lie inside it (for s = 2 a pair of loads split into even and odd lanes), the last such block
   placed flush with the row's end (overlapping the one before: same values), single values only at the
   margins. (The pack had copied each row into a zero-padded buffer, split it value by value and divided
   twice per row: with the row's loads waiting on L3, a quarter of a stride-2 forward pass; the
   prefetch in lethe_direct_pack and the divisions hoisted out of the row gained the most.) */
static inline __attribute__((always_inline)) void pack_row(const float *row, size_t w, size_t s, size_t pad, size_t used, size_t width, size_t first,
                     size_t last, float *d) {
    size_t done = first;
    if (last != (size_t)-1) {
        for (size_t j = first;; j += 8) {
            size_t at = j < last ? j : last;
            const float *src = row + at * s - pad;
            if (s == 1) {
                store8(d + at, load8(src));
            } else {
                v8f a = load8(src), b = load8(src + 8);
                store8(d + at, __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14));
                store8(d + width + at, __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15));
            }
            if (at == last) break;
        }
        done = last + 8;
    }
    for (size_t j = 0; j < first && j < used; j++) pack_column(row, w, s, pad, width, j, d);
    for (size_t j = done; j < used; j++) pack_column(row, w, s, pad, width, j, d);
    for (size_t ph = 0; ph < s; ph++) for (size_t j = used; j < width; j++) d[ph * width + j] = 0.0f;
}

void lethe_direct_pack(const float *x, size_t images, size_t c, size_t h, size_t w, size_t s, size_t pad,
                       size_t kw, size_t rows, size_t wo, float *xp) {
    size_t width = roundup8(wo) + (kw - 1) / s, used = wo + (kw - 1) / s;   /* columns outputs read */
    /* the first column whose sources all lie right of column 0; the last start of a vector block whose
       sources end inside the row ((size_t)-1: none) */
    size_t first = (pad + s - 1) / s, last = (size_t)-1;
    if ((s == 1 || s == 2) && used >= 8 && w + pad >= 8 * s) {
        size_t end = (w + pad - 8 * s) / s;
        if (end > used - 8) end = used - 8;
        if (end >= first) last = end;
    }
    for (size_t bc = 0; bc < images * c; bc++) {
        const float *plane = x + bc * h * w;
        float *dst = xp + bc * rows * s * width;
        for (size_t r = 0; r < rows; r++) {
            long y = (long)r - (long)pad;
            float *d = dst + r * s * width;
            if (y < 0 || y >= (long)h) { for (size_t j = 0; j < s * width; j++) d[j] = 0.0f; continue; }
            /* 4 KiB ahead of the row (the next rows, planes, images): each row is read once, from L3 or
               memory, and the pack had waited on those loads (0.41 -> 0.27 ms of a 2 ms stride-2 pass) */
            for (size_t k = 0; k < w; k += 16) __builtin_prefetch(plane + y * (long)w + 1024 + k);
            /* constant strides, so each copy is compiled for its own */
            if (s == 1) pack_row(plane + y * (long)w, w, 1, pad, used, width, first, last, d);
            else if (s == 2) pack_row(plane + y * (long)w, w, 2, pad, used, width, first, last, d);
            else pack_row(plane + y * (long)w, w, s, pad, used, width, first, last, d);
        }
    }
}

/* The register tile shared by the forward pass and the input gradient: acc[q][v] = sum over source
   channels ci and taps t of wp[(ci ntaps + t) 4 + q] * src[ci chan + base[v] + toff[t] ..+8], for OB <= 4
   output channels and NV <= 4 vectors (NV loads and 4 broadcasts per channel and tap; the weights
   packed in the order they are used). Summed over (ci, t) in order. */
static inline __attribute__((always_inline))
void tile_accumulate(v8f acc[4][4], const float *src, size_t chan, size_t cin, const size_t *toff, size_t ntaps,
                     const float *wp, const size_t *base, const int OB, const int NV) {
    for (int q = 0; q < OB; q++) for (int v = 0; v < NV; v++) acc[q][v] = splat8(0.0f);
    const float *p0 = src + base[0], *p1 = src + base[NV > 1 ? 1 : 0], *p2 = src + base[NV > 2 ? 2 : 0],
                *p3 = src + base[NV > 3 ? 3 : 0];
    for (size_t ci = 0; ci < cin; ci++, p0 += chan, p1 += chan, p2 += chan, p3 += chan) {
        for (size_t t = 0; t < ntaps; t++, wp += 4) {
            size_t off = toff[t];
            v8f in[4];
            in[0] = load8(p0 + off);
            if (NV > 1) in[1] = load8(p1 + off);
            if (NV > 2) in[2] = load8(p2 + off);
            if (NV > 3) in[3] = load8(p3 + off);
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
    size_t at[4], n[4], base[4];
    for (int v = 0; v < NV; v++) {
        size_t oy = (pv0 + v) / vpr, x0 = (pv0 + v) % vpr * 8;
        at[v] = oy * wo + x0;
        n[v] = wo - x0 < 8 ? wo - x0 : 8;
        base[v] = oy * s * s * width + x0;
    }
    v8f acc[4][4];
    tile_accumulate(acc, xp, rows * s * width, c, toff, kk, wp, base, OB, NV);
    /* partial rows through a copy: a lane picked by a variable index would keep the accumulators in memory */
    for (int q = 0; q < OB; q++) {
        v8f add = splat8(bias ? bias[o0 + q] : 0.0f);
        float *plane = out + (o0 + q) * hw;
        for (int v = 0; v < NV; v++) {
            v8f r = acc[q][v] + add;
            if (n[v] == 8) store8(plane + at[v], r);
            else { float lanes[8]; store8(lanes, r); for (size_t l = 0; l < n[v]; l++) plane[at[v] + l] = lanes[l]; }
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
                for (; pv + TILE_VECTORS <= vectors; pv += TILE_VECTORS)
                    direct_tile(xb, w, bias, out_b, c, kk, s, rows, width, wo, hw, o0, pv, toff, 4, TILE_VECTORS);
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
    size_t base[4];
    for (int v = 0; v < NV; v++) base[v] = rowA[v] * gw + colB[v];
    v8f acc[4][4];
    tile_accumulate(acc, gk, chan, o, toff, ntaps, wp, base, OB, NV);
    for (int q = 0; q < OB; q++) {   /* lanes through a copy, as in direct_tile */
        float *plane = gx + (c0 + q) * h * w;
        for (int v = 0; v < NV; v++) {
            float *row = plane + (s * rowA[v] + rho - pad) * w + s * colB[v] + sigma - pad, lanes[8];
            store8(lanes, acc[q][v]);
            for (size_t l = 0; l < count[v]; l++) row[l * s] = lanes[l];
        }
    }
}

/* A tile of the last 1-3 input channels (computed as four, the padded weights zero), one vector. */
static void partial_gradient_tile(const float *gk, size_t o, size_t chan, size_t gw, const size_t *toff, size_t ntaps,
                                  const float *wp, float *gx, size_t h, size_t w, size_t s, size_t pad, size_t rho,
                                  size_t sigma, size_t c0, const size_t *rowA, const size_t *colB, const size_t *count, size_t live) {
    size_t base[4] = {rowA[0] * gw + colB[0], 0, 0, 0};
    v8f acc[4][4];
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
            size_t rowA[4], colB[4], count[4];
            #define VEC(k, pv) do { rowA[k] = a0 + (pv) / per_row; colB[k] = b0 + (pv) % per_row * 8; \
                                   count[k] = b1 - colB[k] < 8 ? b1 - colB[k] : 8; } while (0)
            for (size_t cb = 0; cb < blocks; cb++) {
                size_t c0 = 4 * cb, pv = 0;
                const float *wcb = cls[k].wp + cb * o * ntaps * 4;
                if (c0 + 4 <= c) {
#if TILE_VECTORS == 4
                    for (; pv + 4 <= vectors; pv += 4) { VEC(0, pv); VEC(1, pv + 1); VEC(2, pv + 2); VEC(3, pv + 3);
                        gradient_tile(gk, o, chan, gw, to, ntaps, wcb, gxb, h, w, s, pad, rho, sigma, c0, rowA, colB, count, 4, 4); }
#endif
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
   channel ci (4 x 2 with 16 vector registers; 2 x 9, a 3x3 kernel's every tap, with AVX-512's 32, which
   reads each image's input and gradient planes 2.2x less often), summed over every pixel vector of every
   image in the block, 8 lanes per accumulator reduced in a fixed order at the end. Each accumulator
   sums the same terms in the same order whatever the tile, so the tile shape never changes a bit.
   Lanes beyond a row's end hold zero gradient. */
static inline __attribute__((always_inline))
void direct_weight_tile(const float *xp, const float *gp, float *dw, size_t images, size_t c, size_t o,
                        size_t kk, size_t s, size_t rows, size_t width, size_t ho, size_t wo,
                        size_t o0, size_t ci, size_t t0, const size_t *toff, const int OB, const int NT) {
    size_t wr = roundup8(wo), chan = rows * s * width, plane = ho * wr, step = s * s * width;
    v8f acc[4][9];
    for (int q = 0; q < OB; q++) for (int t = 0; t < NT; t++) acc[q][t] = splat8(0.0f);
    for (size_t b = 0; b < images; b++) {
        const float *x = xp + (b * c + ci) * chan, *g = gp + (b * o + o0) * plane;
        for (size_t oy = 0; oy < ho; oy++, x += step, g += wr)
        for (size_t j = 0; j < wr; j += 8) {
            v8f in[9];
            for (int t = 0; t < NT; t++) in[t] = load8(x + toff[t0 + t] + j);
            for (int q = 0; q < OB; q++) {
                v8f gq = load8(g + q * plane + j);
                for (int t = 0; t < NT; t++) acc[q][t] += gq * in[t];
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
#if LETHE_VECTOR_REGISTERS >= 32
        if (kk == 9)
            for (; o0 + 2 <= o; o0 += 2) direct_weight_tile(xp, gp, dw, images, c, o, kk, s, rows, width, ho, wo, o0, ci, 0, toff, 2, 9);
#endif
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
