/* The kernels built for the target's baseline instruction set (SSE2 on x86-64; what any CPU of the architecture runs).
   dispatch.c picks one build per process from cpuid (lethe_isa_best) unless told otherwise. */
/* system headers first, so that only the kernels' own functions take the target attribute below */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LETHE_ISA_SUFFIX _portable
#include "kernels/isa_names.h"
#include "kernels/kernels_internal.h"
#include "kernels/activations.c"
#include "kernels/direct.c"
#include "kernels/im2col.c"
#include "kernels/norms.c"
#include "kernels/sums.c"
#include "kernels/winograd.c"
