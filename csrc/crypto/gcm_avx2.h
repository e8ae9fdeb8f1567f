/* AES-GCM with 256-bit VAES + VPCLMULQDQ (gcm_avx2.c), behind gx/crypto.h's dispatch. Internal to csrc/.
 * The same contract as gx_gcm_seal / gx_gcm_open / gx_gcm_seal2 / gx_gcm_open2 (arguments already
 * checked by the caller); call only when gx_gcm_avx2_cpu() says the CPU has what it needs. */
#ifndef GX_GCM_AVX2_H
#define GX_GCM_AVX2_H

#include <stddef.h>
#include <stdint.h>

int gx_gcm_avx2_cpu(void);
int gx_gcm_avx2_seal(const uint8_t *key, size_t key_len, const uint8_t *nonce, uint8_t *buf, size_t len,
                     uint8_t *tag);
int gx_gcm_avx2_open(const uint8_t *key, size_t key_len, const uint8_t *nonce, uint8_t *buf, size_t len,
                     const uint8_t *tag);
int gx_gcm_avx2_seal2(const uint8_t *const key[2], size_t key_len, const uint8_t *nonce, uint8_t *const buf[2],
                      const size_t len[2], uint8_t *const tag[2]);
int gx_gcm_avx2_open2(const uint8_t *const key[2], size_t key_len, const uint8_t *nonce, uint8_t *const buf[2],
                      const size_t len[2], const uint8_t *const tag[2]);

#endif
