/* The small products of the transformer steps' attention (per image and head), OpenBLAS against
   libxsmm (Debian libxsmm-dev 1.17), single-threaded, timed alternately in rounds (best of each).
   The shapes and call counts are those `lethe bench --products --model MAE` lists for one MAE
   unlearning step. Row-major C = op(A) op(B), A (m x k), B (k x n); libxsmm is column-major, so it
   computes C^T = op(B)^T op(A)^T. Where libxsmm has no kernel for a transpose (1.17: none for a
   transposed first operand, which the NT product needs), the row gives its NN kernel after an
   explicit transposed copy of B, copy included, and OpenBLAS's NN on the same copy.
   Build and run: bench/small-products/run.sh */
#include <cblas.h>
#include <libxsmm.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

typedef struct { int m, n, k, ta, tb, calls; } Shape;

static void transpose(const float *b, int rows, int cols, float *bt) { /* bt (cols x rows) = b^T */
    for (int i = 0; i < rows; i++) for (int j = 0; j < cols; j++) bt[j * rows + i] = b[i * cols + j];
}

/* Arguments: optional shapes "m,n,k,AB,calls" (AB: NN, NT, TN), else the MAE step's attention products. */
int main(int argc, char **argv) {
    int rounds = 7;
    libxsmm_init();
    openblas_set_num_threads(1);
    Shape shapes[64] = {
        {48, 48, 32, 0, 1, 3072}, {48, 32, 48, 0, 0, 3072}, {48, 32, 48, 1, 0, 2048},
        {48, 48, 32, 0, 0, 1024}, {32, 48, 48, 1, 0, 1024},
    };
    size_t count = 5;
    if (argc > 1) {
        count = 0;
        for (int i = 1; i < argc && count < 64; i++) {
            char ab[3] = {0};
            Shape s;
            if (sscanf(argv[i], "%d,%d,%d,%2[NT],%d", &s.m, &s.n, &s.k, ab, &s.calls) != 5) {
                fprintf(stderr, "small_products: shape \"%s\" is not m,n,k,AB,calls (AB: NN, NT or TN)\n", argv[i]);
                return 2;
            }
            s.ta = ab[0] == 'T'; s.tb = ab[1] == 'T';
            shapes[count++] = s;
        }
    }
    printf("%-16s %6s %12s %12s %9s  %s\n", "product", "calls", "OpenBLAS ms", "libxsmm ms", "ratio", "(OpenBLAS / libxsmm; same results to)");
    for (size_t si = 0; si < count; si++) {
        Shape s = shapes[si];
        int m = s.m, n = s.n, k = s.k, calls = s.calls;
        float *a = malloc(sizeof(float) * calls * m * k), *b = malloc(sizeof(float) * calls * k * n);
        float *c1 = malloc(sizeof(float) * calls * m * n), *c2 = malloc(sizeof(float) * calls * m * n);
        float *bt = malloc(sizeof(float) * k * n);
        srand(1);
        for (long i = 0; i < (long)calls * m * k; i++) a[i] = (rand() % 2001 - 1000) / 1000.0f;
        for (long i = 0; i < (long)calls * k * n; i++) b[i] = (rand() % 2001 - 1000) / 1000.0f;
        int lda = s.ta ? m : k, ldb = s.tb ? k : n;
        int flags = LIBXSMM_GEMM_FLAG_BETA_0 | (s.tb ? LIBXSMM_GEMM_FLAG_TRANS_A : 0) | (s.ta ? LIBXSMM_GEMM_FLAG_TRANS_B : 0);
        libxsmm_blasint M = n, N = m, K = k, LDA = ldb, LDB = lda, LDC = n;
        float alpha = 1, beta = 0;
        libxsmm_smmfunction f = libxsmm_smmdispatch(M, N, K, &LDA, &LDB, &LDC, &alpha, &beta, &flags, NULL);
        /* no kernel for the transpose: the NN kernel on B^T copied (ld n), and OpenBLAS NN alike */
        int viaCopy = f == NULL && s.tb && !s.ta;
        libxsmm_smmfunction g = NULL;
        if (viaCopy) {
            int nn = LIBXSMM_GEMM_FLAG_BETA_0;
            libxsmm_blasint lda2 = n;
            g = libxsmm_smmdispatch(M, N, K, &lda2, &LDB, &LDC, &alpha, &beta, &nn, NULL);
        }
        double tb = 1e30, tx = 1e30, tc = 1e30;
        for (int r = 0; r < rounds; r++) {
            double t = now();
            for (int i = 0; i < calls; i++)
                cblas_sgemm(CblasRowMajor, s.ta ? CblasTrans : CblasNoTrans, s.tb ? CblasTrans : CblasNoTrans, m, n, k,
                            1, a + (long)i * m * k, lda, b + (long)i * k * n, ldb, 0, c1 + (long)i * m * n, n);
            t = now() - t; if (t < tb) tb = t;
            if (f) {
                t = now();
                for (int i = 0; i < calls; i++) f(b + (long)i * k * n, a + (long)i * m * k, c2 + (long)i * m * n);
                t = now() - t; if (t < tx) tx = t;
            } else if (g) {
                t = now();
                for (int i = 0; i < calls; i++) { transpose(b + (long)i * k * n, n, k, bt); g(bt, a + (long)i * m * k, c2 + (long)i * m * n); }
                t = now() - t; if (t < tx) tx = t;
                t = now();
                for (int i = 0; i < calls; i++) {
                    transpose(b + (long)i * k * n, n, k, bt);
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1, a + (long)i * m * k, k, bt, n, 0, c1 + (long)i * m * n, n);
                }
                t = now() - t; if (t < tc) tc = t;
            }
        }
        double diff = 0;
        if (f || g) for (long i = 0; i < (long)calls * m * n; i++) diff = fmax(diff, fabs(c1[i] - c2[i]));
        char name[32];
        snprintf(name, sizeof name, "%dx%dx%d %c%c", m, n, k, s.ta ? 'T' : 'N', s.tb ? 'T' : 'N');
        if (!f && !g) printf("%-16s %6d %12.2f %12s\n", name, calls, tb * 1e3, "no kernel");
        else printf("%-16s %6d %12.2f %12.2f %9.2f  %g%s\n", name, calls, tb * 1e3, tx * 1e3, tb / tx, diff,
                    viaCopy ? "  (libxsmm: NN on a transposed copy of B)" : "");
        if (viaCopy) printf("%-16s %6d %12.2f %12s %9s  (OpenBLAS NN on the same copy: %.2fx its NT)\n", "", calls, tc * 1e3, "", "", tb / tc);
        free(a); free(b); free(c1); free(c2); free(bt);
    }
    libxsmm_finalize();
    return 0;
}
