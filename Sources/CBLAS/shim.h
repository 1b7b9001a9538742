#include <stddef.h>
#include <cblas.h>

/* LAPACK's symmetric eigensolver, exported by libopenblas (Fortran ABI: the trailing size_t
   arguments are the lengths of the two character arguments). */
void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
             double *work, const int *lwork, int *iwork, const int *liwork, int *info, size_t jobz_len,
             size_t uplo_len);
