/* The kernels built for AVX-512 F/BW/CD/DQ/VL (x86-64-v4: Skylake-SP, Zen 4 and later).
   dispatch.c picks one build per process from cpuid (lethe_isa_best) unless told otherwise. */
#if defined(__x86_64__)
/* system headers first, so that only the kernels' own functions take the target attribute below */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LETHE_ISA_SUFFIX _avx512
#define LETHE_VECTOR_REGISTERS 32
#include "kernels/isa_names.h"
#pragma clang attribute push(__attribute__((target("arch=x86-64-v4"))), apply_to = function)
#include "kernels/kernels_internal.h"
#include "kernels/activations.c"
#include "kernels/direct.c"
#include "kernels/im2col.c"
#include "kernels/norms.c"
#include "kernels/sums.c"
#include "kernels/winograd.c"
#pragma clang attribute pop
#endif
