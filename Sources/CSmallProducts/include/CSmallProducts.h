/* Small float products through libxsmm (Debian libxsmm-dev): its JIT-generated kernels for one
   shape and layout, which need no packing. OpenBLAS's kernels without small-matrix paths (Haswell,
   the kernel the development and CI machines pin) spend more on packing small operands than on the
   product itself (bench/small-products). */
#ifndef LETHE_SMALL_PRODUCTS_H
#define LETHE_SMALL_PRODUCTS_H

#include <stddef.h>

/* Row-major C (m x n, ldc) = op(A) op(B) + beta C with beta 0 or 1, A (m x k) and B (k x n) after the
   transposes, as cblas_sgemm with alpha 1. Returns 1 when done; 0 when libxsmm has no kernel for the
   shape or layout (nothing written: the caller runs the product elsewhere). */
int lethe_xsmm_sgemm(int trans_a, int trans_b, int m, int n, int k, const float *a, int lda, const float *b,
                     int ldb, float beta, float *c, int ldc);

#endif
