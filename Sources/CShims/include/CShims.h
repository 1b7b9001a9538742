#ifndef LETHE_CSHIMS_H
#define LETHE_CSHIMS_H

/// Keeps freed memory in the process heap instead of returning large blocks to the kernel, so
/// buffers freed and re-allocated every training step do not fault in fresh zeroed pages.
void lethe_keep_freed_memory(void);



#include <stddef.h>

/// GELU (erf form) and SiLU for float32, forward and backward, written so compilers vectorise them.
/// y = x * (1 + erf(x / sqrt 2)) / 2; dx = g * (Phi(x) + x * phi(x)).
void lethe_gelu_forward(const float *x, float *y, size_t n);
void lethe_gelu_backward(const float *x, const float *g, float *dx, size_t n);
/// y = x * sigmoid(x); dx = g * s * (1 + x (1 - s)).
void lethe_silu_forward(const float *x, float *y, size_t n);
void lethe_silu_backward(const float *x, const float *g, float *dx, size_t n);
#endif
