/* Inside one instruction set's build of the kernels (isa_*.c), every public kernel name carries the
   build's suffix (LETHE_ISA_SUFFIX): lethe_sum there defines and calls lethe_sum_avx2, say, so kernels
   calling kernels stay within their build. The list is kernel_list.h's. */
#ifndef LETHE_ISA_NAMES_H
#define LETHE_ISA_NAMES_H

#define LETHE_ISA_CAT_(a, b) a##b
#define LETHE_ISA_CAT(a, b) LETHE_ISA_CAT_(a, b)
#define LETHE_ISA_NAME(name) LETHE_ISA_CAT(name, LETHE_ISA_SUFFIX)

#define lethe_gelu_forward LETHE_ISA_NAME(lethe_gelu_forward)
#define lethe_gelu_backward LETHE_ISA_NAME(lethe_gelu_backward)
#define lethe_silu_forward LETHE_ISA_NAME(lethe_silu_forward)
#define lethe_silu_backward LETHE_ISA_NAME(lethe_silu_backward)
#define lethe_sum LETHE_ISA_NAME(lethe_sum)
#define lethe_sum_squared_difference LETHE_ISA_NAME(lethe_sum_squared_difference)
#define lethe_column_sums LETHE_ISA_NAME(lethe_column_sums)
#define lethe_add LETHE_ISA_NAME(lethe_add)
#define lethe_vexpf LETHE_ISA_NAME(lethe_vexpf)
#define lethe_norm_forward LETHE_ISA_NAME(lethe_norm_forward)
#define lethe_norm_backward LETHE_ISA_NAME(lethe_norm_backward)
#define lethe_softmax_rows LETHE_ISA_NAME(lethe_softmax_rows)
#define lethe_softmax_backward_rows LETHE_ISA_NAME(lethe_softmax_backward_rows)
#define lethe_im2col LETHE_ISA_NAME(lethe_im2col)
#define lethe_col2im LETHE_ISA_NAME(lethe_col2im)
#define lethe_winograd_input LETHE_ISA_NAME(lethe_winograd_input)
#define lethe_winograd_output LETHE_ISA_NAME(lethe_winograd_output)
#define lethe_winograd_output_gradient LETHE_ISA_NAME(lethe_winograd_output_gradient)
#define lethe_winograd_kernel LETHE_ISA_NAME(lethe_winograd_kernel)
#define lethe_winograd_kernel_gradient LETHE_ISA_NAME(lethe_winograd_kernel_gradient)
#define lethe_direct_pack LETHE_ISA_NAME(lethe_direct_pack)
#define lethe_direct_forward LETHE_ISA_NAME(lethe_direct_forward)
#define lethe_direct_input_gradient LETHE_ISA_NAME(lethe_direct_input_gradient)
#define lethe_direct_pack_gradient LETHE_ISA_NAME(lethe_direct_pack_gradient)
#define lethe_direct_weight_gradient LETHE_ISA_NAME(lethe_direct_weight_gradient)

#endif
