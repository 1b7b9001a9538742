/* Sums and adds over float32 arrays, in the fixed order of LANES interleaved partials (see
   kernels_internal.h): their bits depend on neither the compiler nor the thread count. */
#include "kernels_internal.h"

float lethe_sum(const float *x, size_t n) {
    float acc[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++) acc[k] += x[i + k];
    for (int k = 0; i < n; i++, k++) acc[k] += x[i];
    return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

/* sum (a - b)^2, in the same eight partials as lethe_sum */
float lethe_sum_squared_difference(const float *a, const float *b, size_t n) {
    float acc[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++) { float d = a[i + k] - b[i + k]; acc[k] += d * d; }
    for (int k = 0; i < n; i++, k++) { float d = a[i] - b[i]; acc[k] += d * d; }
    return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

/* sum (x - c)^2 */
void lethe_column_sums(const float *x, size_t rows, size_t n, float *out) {
    for (size_t r = 0; r < rows; r++) {
        const float *row = x + r * n;
        for (size_t j = 0; j < n; j++) out[j] += row[j];
    }
}

void lethe_add(float *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] += src[i];
}
