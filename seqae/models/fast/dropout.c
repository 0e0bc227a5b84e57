/* seqae's CPU dropout kernel: y = x * keep * scale in one pass, the keep decisions computed, not stored.
 *
 * Compiled on first use by seqae/models/native.py and called through ctypes. The random bits are a keyed hash of
 * the element's position, so any part of a tensor can be computed on its own (by another thread, or again in the
 * backward pass with the same key): the 32-bit word number w is hashed twice with a 32-bit integer mixer (the
 * two-multiply one found by C. Wellons' hash prospector), the 64-bit key added between the rounds. Elements come in
 * blocks of 32: element j < 16 of block b takes the low 16 bits of word 16 b + j, element 16 + j its high 16 bits,
 * so that a vector of consecutive elements reads consecutive words (no shuffles; at 16 floats per AVX-512
 * instruction this runs as fast as torch's multiply by a scalar). An element is kept when its 16 bits are
 * >= `threshold` (round(p * 65536)): probability (65536 - threshold) / 65536. A dropped element is multiplied by 0,
 * so a NaN or inf stays one, as in torch.
 */
#include <stdint.h>

/* Below this many blocks (65,536 elements) one thread does the pass: waking the others costs about as much. Built
   with -fopenmp the library uses the OpenMP runtime torch has loaded, so its threads are torch's intra-op threads
   (torch.set_num_threads), already awake after the op before. */
#define PARALLEL_BLOCKS 2048

static inline uint32_t mix32(uint32_t x) {
    x ^= x >> 16;
    x *= 0x21f0aaadu;
    x ^= x >> 15;
    x *= 0x735a2d97u;
    x ^= x >> 15;
    return x;
}

static inline uint32_t word_bits(uint32_t k0, uint32_t k1, uint64_t word) {
    return mix32(mix32((uint32_t)word + k0) ^ (k1 + (uint32_t)(word >> 32)));
}

/* y[i] = x[i] * (keep(i) ? scale : 0) for i < n. x may be y. */
void seqae_dropout(const float *x, float *y, int64_t n, uint64_t key, uint32_t threshold, float scale) {
    const uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    const int64_t blocks = n / 32;
#pragma omp parallel for schedule(static) if (blocks >= PARALLEL_BLOCKS)
    for (int64_t b = 0; b < blocks; b++) {
        const float *xb = x + 32 * b;
        float *yb = y + 32 * b;
        for (int j = 0; j < 16; j++) {
            const uint32_t bits = word_bits(k0, k1, (uint64_t)b * 16 + (uint64_t)j);
            yb[j] = xb[j] * ((bits & 0xffffu) >= threshold ? scale : 0.0f);
            yb[16 + j] = xb[16 + j] * ((bits >> 16) >= threshold ? scale : 0.0f);
        }
    }
    for (int64_t i = 32 * blocks; i < n; i++) { /* the last, partial block */
        const int r = (int)(i % 32);
        const uint32_t bits = word_bits(k0, k1, (uint64_t)blocks * 16 + (uint64_t)(r % 16));
        y[i] = x[i] * ((r < 16 ? bits & 0xffffu : bits >> 16) >= threshold ? scale : 0.0f);
    }
}
