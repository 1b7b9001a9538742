/* One binary, fast on every CPU: the kernels exist in one build per instruction set (isa_*.c), and each
   public kernel calls the build chosen for the process. The choice is made once, from cpuid, the widest
   build the CPU and the OS run (lethe_isa_best), unless lethe_isa_use names another; Lethe changes it
   only while it holds the numeric core alone (Numerics.exclusively). Builds may differ in the last bits
   (FMA contraction, wider registers), never in the order of a sum: each stays thread-count independent. */
#include "CShims.h"
#include "kernels/kernel_list.h"
#include <stdatomic.h>

#if defined(__x86_64__)
#define VARIANT_DECLARATIONS(name, ret, params) ret name##_portable params; ret name##_avx2 params; ret name##_avx512 params;
#else
#define VARIANT_DECLARATIONS(name, ret, params) ret name##_portable params;
#endif
#define DECLARE_VOID(name, params, args) VARIANT_DECLARATIONS(name, void, params)
#define DECLARE_FLOAT(name, params, args) VARIANT_DECLARATIONS(name, float, params)
LETHE_VOID_KERNELS(DECLARE_VOID)
LETHE_FLOAT_KERNELS(DECLARE_FLOAT)

int lethe_isa_best(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) return LETHE_ISA_AVX512;
    if (__builtin_cpu_supports("x86-64-v3")) return LETHE_ISA_AVX2;
#endif
    return LETHE_ISA_PORTABLE;
}

static _Atomic int active_isa = -1;

static inline int isa(void) {
    int a = atomic_load_explicit(&active_isa, memory_order_relaxed);
    if (a < 0) {
        a = lethe_isa_best();
        atomic_store_explicit(&active_isa, a, memory_order_relaxed);
    }
    return a;
}

int lethe_isa_active(void) { return isa(); }

int lethe_isa_use(int which) {
    if (which < LETHE_ISA_PORTABLE || which > lethe_isa_best()) return 0;
    atomic_store_explicit(&active_isa, which, memory_order_relaxed);
    return 1;
}

#if defined(__x86_64__)
#define DISPATCH_VOID(name, params, args)                                                  \
    void name params {                                                                     \
        switch (isa()) {                                                                   \
        case LETHE_ISA_AVX512: name##_avx512 args; break;                                  \
        case LETHE_ISA_AVX2: name##_avx2 args; break;                                      \
        default: name##_portable args;                                                     \
        }                                                                                  \
    }
#define DISPATCH_FLOAT(name, params, args)                                                 \
    float name params {                                                                    \
        switch (isa()) {                                                                   \
        case LETHE_ISA_AVX512: return name##_avx512 args;                                  \
        case LETHE_ISA_AVX2: return name##_avx2 args;                                      \
        default: return name##_portable args;                                              \
        }                                                                                  \
    }
#else
#define DISPATCH_VOID(name, params, args) void name params { name##_portable args; }
#define DISPATCH_FLOAT(name, params, args) float name params { return name##_portable args; }
#endif
LETHE_VOID_KERNELS(DISPATCH_VOID)
LETHE_FLOAT_KERNELS(DISPATCH_FLOAT)
