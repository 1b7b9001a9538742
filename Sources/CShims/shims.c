#include "CShims.h"

#include <stdlib.h>   /* defines __GLIBC__ on glibc systems (it is not defined before any libc header) */
#if defined(__GLIBC__)
#include <malloc.h>
#endif

void lethe_keep_freed_memory(void) {
#if defined(__GLIBC__)
    /* glibc caps the mmap threshold at 32 MiB on 64-bit (a larger value is refused): blocks below it are
       served from the heap, which the trim threshold keeps from shrinking. */
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

/* Per-thread "run BLAS single-threaded here" depth (see Parallel.blocksWithSerialBLAS). */
static _Thread_local int serial_blas_depth = 0;
int lethe_serial_blas_depth(void) { return serial_blas_depth; }
void lethe_serial_blas_enter(void) { serial_blas_depth++; }
void lethe_serial_blas_leave(void) { serial_blas_depth--; }
