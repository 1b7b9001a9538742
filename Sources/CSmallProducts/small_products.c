#include "CSmallProducts.h"
#include <libxsmm.h>

/* libxsmm is column-major: the row-major product is C^T = op(B)^T op(A)^T, so B goes first. A row-major
   operand that is transposed is, seen column-major, not transposed, and the other way round. libxsmm
   1.17 has no kernel with its first operand transposed (our transB), and then returns no kernel. */
int lethe_xsmm_sgemm(int trans_a, int trans_b, int m, int n, int k, const float *a, int lda, const float *b,
                     int ldb, float beta, float *c, int ldc) {
    if (beta != 0.0f && beta != 1.0f) return 0;
    int flags = (beta == 0.0f ? LIBXSMM_GEMM_FLAG_BETA_0 : 0) | (trans_b ? LIBXSMM_GEMM_FLAG_TRANS_A : 0) |
                (trans_a ? LIBXSMM_GEMM_FLAG_TRANS_B : 0);
    libxsmm_blasint lda_ = ldb, ldb_ = lda, ldc_ = ldc;
    float alpha = 1.0f;
    libxsmm_smmfunction kernel = libxsmm_smmdispatch(n, m, k, &lda_, &ldb_, &ldc_, &alpha, &beta, &flags, NULL);
    if (kernel == NULL) return 0;
    kernel(b, a, c);
    return 1;
}
