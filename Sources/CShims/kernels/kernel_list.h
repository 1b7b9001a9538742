/* Every kernel that exists in one build per instruction set (kernels/ (every .c there), compiled by isa_*.c), with
   its parameters and the arguments that pass them on: the dispatcher (dispatch.c) defines the public
   name from this list. A kernel missing here or in isa_names.h fails to link. */
#ifndef LETHE_KERNEL_LIST_H
#define LETHE_KERNEL_LIST_H

#include <stddef.h>

/* X(name, parameters, arguments) for the kernels returning void */
#define LETHE_VOID_KERNELS(X)                                                                           \
    X(lethe_gelu_forward, (const float *x, float *y, size_t n), (x, y, n))                             \
    X(lethe_gelu_backward, (const float *x, const float *g, float *dx, size_t n), (x, g, dx, n))        \
    X(lethe_silu_forward, (const float *x, float *y, size_t n), (x, y, n))                             \
    X(lethe_silu_backward, (const float *x, const float *g, float *dx, size_t n), (x, g, dx, n))        \
    X(lethe_column_sums, (const float *x, size_t rows, size_t n, float *out), (x, rows, n, out))        \
    X(lethe_add, (float *dst, const float *src, size_t n), (dst, src, n))                               \
    X(lethe_norm_forward,                                                                               \
      (const float *x, float *xhat, float *y, float *rstd, size_t g0, size_t g1, size_t m, size_t spatial, \
       size_t channels, const float *w, const float *b, float eps),                                     \
      (x, xhat, y, rstd, g0, g1, m, spatial, channels, w, b, eps))                                      \
    X(lethe_norm_backward,                                                                              \
      (const float *gy, const float *xhat, const float *rstd, const float *w, float *dx, float *dw,    \
       float *db, size_t g0, size_t g1, size_t m, size_t spatial, size_t channels),                     \
      (gy, xhat, rstd, w, dx, dw, db, g0, g1, m, spatial, channels))                                    \
    X(lethe_softmax_rows, (float *x, size_t rows, size_t n), (x, rows, n))                              \
    X(lethe_softmax_backward_rows, (const float *y, const float *g, float *dx, size_t rows, size_t n, float scale), \
      (y, g, dx, rows, n, scale))                                                                       \
    X(lethe_im2col,                                                                                     \
      (const float *x, size_t images, size_t c, size_t h, size_t w, size_t kh, size_t kw, size_t stride, \
       size_t pad, size_t ho, size_t wo, float *dst),                                                   \
      (x, images, c, h, w, kh, kw, stride, pad, ho, wo, dst))                                           \
    X(lethe_col2im,                                                                                     \
      (const float *cols, size_t images, size_t c, size_t h, size_t w, size_t kh, size_t kw, size_t stride, \
       size_t pad, size_t ho, size_t wo, float *gx),                                                    \
      (cols, images, c, h, w, kh, kw, stride, pad, ho, wo, gx))                                         \
    X(lethe_winograd_input,                                                                             \
      (const float *x, size_t images, size_t c, size_t h, size_t w, size_t pad, size_t th, size_t tw, float *v), \
      (x, images, c, h, w, pad, th, tw, v))                                                             \
    X(lethe_winograd_output,                                                                            \
      (const float *m, size_t images, size_t o, size_t ho, size_t wo, size_t th, size_t tw, const float *bias, \
       float *out),                                                                                     \
      (m, images, o, ho, wo, th, tw, bias, out))                                                        \
    X(lethe_winograd_output_gradient,                                                                   \
      (const float *g, size_t images, size_t o, size_t ho, size_t wo, size_t th, size_t tw, float *dm), \
      (g, images, o, ho, wo, th, tw, dm))                                                               \
    X(lethe_winograd_kernel, (const float *w, size_t pairs, float *u), (w, pairs, u))                   \
    X(lethe_winograd_kernel_gradient, (const float *du, size_t pairs, float *dw), (du, pairs, dw))      \
    X(lethe_direct_pack,                                                                                \
      (const float *x, size_t images, size_t c, size_t h, size_t w, size_t s, size_t pad, size_t kw, size_t rows, \
       size_t wo, float *xp),                                                                           \
      (x, images, c, h, w, s, pad, kw, rows, wo, xp))                                                   \
    X(lethe_direct_forward,                                                                             \
      (const float *xp, size_t images, size_t c, size_t o, size_t kh, size_t kw, size_t s, size_t rows, size_t ho, \
       size_t wo, const float *weight, const float *bias, float *out),                                  \
      (xp, images, c, o, kh, kw, s, rows, ho, wo, weight, bias, out))                                   \
    X(lethe_direct_input_gradient,                                                                      \
      (const float *g, size_t images, size_t c, size_t h, size_t w, size_t o, size_t kh, size_t kw, size_t s, \
       size_t pad, size_t ho, size_t wo, const float *weight, float *gx),                               \
      (g, images, c, h, w, o, kh, kw, s, pad, ho, wo, weight, gx))                                      \
    X(lethe_direct_pack_gradient, (const float *g, size_t images, size_t o, size_t ho, size_t wo, float *gp), \
      (g, images, o, ho, wo, gp))                                                                       \
    X(lethe_direct_weight_gradient,                                                                     \
      (const float *xp, const float *gp, size_t images, size_t c, size_t o, size_t kh, size_t kw, size_t s, \
       size_t rows, size_t ho, size_t wo, float *dw),                                                   \
      (xp, gp, images, c, o, kh, kw, s, rows, ho, wo, dw))

/* X(name, parameters, arguments) for the kernels returning float */
#define LETHE_FLOAT_KERNELS(X)                                                                          \
    X(lethe_sum, (const float *x, size_t n), (x, n))                                                    \
    X(lethe_sum_squared_difference, (const float *a, const float *b, size_t n), (a, b, n))              \
    X(lethe_vexpf, (float x), (x))

#endif
