#include "kernels_internal.h"

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
