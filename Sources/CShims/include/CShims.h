#ifndef LETHE_CSHIMS_H
#define LETHE_CSHIMS_H

/// Keeps freed memory in the process heap instead of returning large blocks to the kernel, so
/// buffers freed and re-allocated every training step do not fault in fresh zeroed pages.
void lethe_keep_freed_memory(void);

/// The calling thread's depth of regions whose BLAS calls must run single-threaded (blocks of work
/// already spread over the threads). Thread-local, so other threads' calls are not affected.
int lethe_serial_blas_depth(void);
void lethe_serial_blas_enter(void);
void lethe_serial_blas_leave(void);

/// Stop requests (signals.c). `install` handles SIGTERM, SIGINT and SIGHUP: while a training loop
/// defers them (`defer(1)`), the first one is only recorded (`requested` returns its number) so the
/// loop can save its state and leave; otherwise, and on a second request, the process dies by the
/// signal as it would by default. `die` flushes stdio and dies by `sig`.
void lethe_stop_install(void);
void lethe_stop_defer(int on);
int lethe_stop_requested(void);
void lethe_stop_die(int sig);



#include <stddef.h>

/// The instruction sets the kernels below are built for (dispatch.c): every kernel exists once per
/// set and calls the one chosen for the process, by default the widest the CPU runs.
enum {
    LETHE_ISA_PORTABLE = 0,   /* the target's baseline (SSE2 on x86-64) */
    LETHE_ISA_AVX2 = 1,       /* x86-64-v3: AVX2 + FMA */
    LETHE_ISA_AVX512 = 2,     /* x86-64-v4: AVX-512 F/BW/CD/DQ/VL */
};
/// The widest set this CPU (and its OS) runs.
int lethe_isa_best(void);
/// The set the kernels use now.
int lethe_isa_active(void);
/// Use `isa` from now on; 0 (and no change) if this CPU cannot run it.
int lethe_isa_use(int isa);

/// GELU (erf form) and SiLU for float32, forward and backward, written so compilers vectorise them.
/// y = x * (1 + erf(x / sqrt 2)) / 2; dx = g * (Phi(x) + x * phi(x)).
void lethe_gelu_forward(const float *x, float *y, size_t n);
void lethe_gelu_backward(const float *x, const float *g, float *dx, size_t n);
/// y = x * sigmoid(x); dx = g * s * (1 + x (1 - s)).
void lethe_silu_forward(const float *x, float *y, size_t n);
void lethe_silu_backward(const float *x, const float *g, float *dx, size_t n);

/// Memory-bound kernels (sums.c). Sums use eight interleaved partials in a fixed order, so their
/// bits depend on neither the compiler's vectorisation nor the thread count.
float lethe_sum(const float *x, size_t n);
/// sum (a[i] - b[i])^2 over n elements, in lethe_sum's fixed order.
float lethe_sum_squared_difference(const float *a, const float *b, size_t n);
/// out[j] += sum over rows of x[r][j].
void lethe_column_sums(const float *x, size_t rows, size_t n, float *out);
/// dst[i] += src[i].
void lethe_add(float *dst, const float *src, size_t n);
/// exp by a branch-free polynomial (about 1 ulp), the one the activations use; exported so the tests
/// can hold it to that accuracy.
float lethe_vexpf(float x);

/// Layer / group normalisation of groups g0..<g1 (group g: elements g m ..< (g+1) m; element i has
/// channel (i / spatial) % channels). Writes xhat, y and rstd[g]; w and b may be NULL (1 and 0).
void lethe_norm_forward(const float *x, float *xhat, float *y, float *rstd, size_t g0, size_t g1,
                        size_t m, size_t spatial, size_t channels, const float *w, const float *b, float eps);
/// Its backward: dx (written, may be NULL), and dw / db (added into, per channel, may be NULL).
void lethe_norm_backward(const float *gy, const float *xhat, const float *rstd, const float *w,
                         float *dx, float *dw, float *db, size_t g0, size_t g1,
                         size_t m, size_t spatial, size_t channels);

/// Softmax of each row of the (rows, n) matrix x, in place (exp by lethe_vexpf).
void lethe_softmax_rows(float *x, size_t rows, size_t n);
/// dx = scale * y * (g - sum(g * y)) per row: softmax's backward given its output y.
void lethe_softmax_backward_rows(const float *y, const float *g, float *dx, size_t rows, size_t n, float scale);

/// im2col of `images` consecutive (c, h, w) images into a (c kh kw, images ho wo) matrix, zeros in
/// the padding; and its adjoint, adding a column matrix's entries back into the images' gradient.
void lethe_im2col(const float *x, size_t images, size_t c, size_t h, size_t w, size_t kh, size_t kw,
                  size_t stride, size_t pad, size_t ho, size_t wo, float *dst);
void lethe_col2im(const float *cols, size_t images, size_t c, size_t h, size_t w, size_t kh, size_t kw,
                  size_t stride, size_t pad, size_t ho, size_t wo, float *gx);

/// Winograd F(4x4, 3x3) transforms of one block of images (layouts in LetheTensor's Winograd.swift):
/// input tiles B^T d B, outputs A^T M A (+ bias), and the output gradient's A dY A^T.
void lethe_winograd_input(const float *x, size_t images, size_t c, size_t h, size_t w, size_t pad,
                          size_t th, size_t tw, float *v);
void lethe_winograd_output(const float *m, size_t images, size_t o, size_t ho, size_t wo,
                           size_t th, size_t tw, const float *bias, float *out);
void lethe_winograd_output_gradient(const float *g, size_t images, size_t o, size_t ho, size_t wo,
                                    size_t th, size_t tw, float *dm);
/// The kernel's transforms over `pairs` (o, c) pairs: u[ξ][pair] = G w[pair] G^T, and dw[pair] = G^T du[·][pair] G.
void lethe_winograd_kernel(const float *w, size_t pairs, float *u);
void lethe_winograd_kernel_gradient(const float *du, size_t pairs, float *dw);

/// Direct convolution (direct.c), for few input channels or stride > 1. `lethe_direct_pack` writes a
/// block's zero-padded, column-phase-split input xp (per image and channel: rows = (ho - 1) s + kh
/// rows of s phases of roundup8(wo) + (kw - 1) / s columns); the forward pass writes out (images, o,
/// ho, wo) = conv + bias (bias may be NULL); the weight gradient (o, c, kh, kw) is overwritten with
/// the block's sum, from gp = the output gradient with rows zero-padded to roundup8(wo) columns.
void lethe_direct_pack(const float *x, size_t images, size_t c, size_t h, size_t w, size_t s, size_t pad,
                       size_t kw, size_t rows, size_t wo, float *xp);
void lethe_direct_forward(const float *xp, size_t images, size_t c, size_t o, size_t kh, size_t kw, size_t s,
                          size_t rows, size_t ho, size_t wo, const float *weight, const float *bias, float *out);
/// The input gradient gx (images, c, h, w) of a strided convolution from g (images, o, ho, wo), every
/// element written.
void lethe_direct_input_gradient(const float *g, size_t images, size_t c, size_t h, size_t w, size_t o, size_t kh,
                                 size_t kw, size_t s, size_t pad, size_t ho, size_t wo, const float *weight, float *gx);
void lethe_direct_pack_gradient(const float *g, size_t images, size_t o, size_t ho, size_t wo, float *gp);
void lethe_direct_weight_gradient(const float *xp, const float *gp, size_t images, size_t c, size_t o, size_t kh,
                                  size_t kw, size_t s, size_t rows, size_t ho, size_t wo, float *dw);
#endif
