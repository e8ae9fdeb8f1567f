/* AES-GCM for one packet with a fresh key, for the Shadowsocks-AEAD UDP format (gx/aead.h).
 *
 * Every Shadowsocks UDP packet has its own subkey, so the cost that matters is not the bulk rate
 * but the key setup: OpenSSL 3's EVP re-init (provider dispatch, parameter lookups, its GHASH
 * table) costs about as much as sealing the 1350 bytes. This implementation does the whole packet
 * in one call: AES key expansion with AES-NI, H and its powers H^1..H^16 computed four lanes at a
 * time, CTR with VAES four blocks per instruction, GHASH with VPCLMULQDQ over 16 blocks per
 * reduction (NIST SP 800-38D; GHASH in the byte-reflected domain with the shift-by-one reduction of
 * Gueron and Kounavis's carry-less multiplication paper). Two builds of it: in 512-bit registers
 * (AVX-512 F/BW/VL, VAES, VPCLMULQDQ: Intel servers since Ice Lake, AMD Zen 4) and in 256-bit ones
 * (AVX2, VAES, VPCLMULQDQ: AMD Zen 3, Intel client cores since Alder Lake); the first the CPU can
 * run is used. Without either (or with GX_CRYPTO=openssl, or a GX_NO_SIMD build), gx_gcm_impl() is
 * GX_GCM_OPENSSL and callers keep their EVP path.
 * gx_gcm_seal/open and seal2/open2 run the implementation chosen (GX_GCM_VAES or GX_GCM_VAES_AVX2),
 * or with GX_GCM_OPENSSL chosen the best of ours the CPU has.
 *
 * Keys of 16 (AES-128) and 32 (AES-256) bytes; 12-byte nonce; no additional data.
 */
#ifndef GX_GCM_H
#define GX_GCM_H

#include <stddef.h>
#include <stdint.h>

#define GX_GCM_TAG_LEN 16
#define GX_GCM_NONCE_LEN 12

enum gx_gcm_impl {
    GX_GCM_AUTO = 0,              /* VAES if the CPU has it, else OpenSSL */
    GX_GCM_OPENSSL = 1,           /* the caller's EVP path */
    GX_GCM_VAES = 2,              /* ours (x86-64 with AVX-512 VAES + VPCLMULQDQ) */
    GX_GCM_VAES_AVX2 = 3,         /* ours in 256-bit registers (VAES + VPCLMULQDQ + AVX2, no AVX-512) */
};

/* Encrypt buf (len bytes) in place and write the tag. 0, or -EINVAL (key_len not 16/32, or the
 * VAES code is not available: check gx_gcm_impl() first). */
int gx_gcm_seal(const uint8_t *key, size_t key_len, const uint8_t nonce[GX_GCM_NONCE_LEN], uint8_t *buf,
                size_t len, uint8_t tag[GX_GCM_TAG_LEN]);
/* Decrypt buf (ciphertext, len bytes) in place and check the tag. The tag is not checked before
 * decrypting: one pass hashes the ciphertext and decrypts it; when the tag then does not match, the
 * keystream is applied again, so buf holds the ciphertext again when the call returns and no
 * unauthenticated plaintext is left in it. 0, -EBADMSG (the tag does not match: buf is as it was),
 * or -EINVAL as above. */
int gx_gcm_open(const uint8_t *key, size_t key_len, const uint8_t nonce[GX_GCM_NONCE_LEN], uint8_t *buf,
                size_t len, const uint8_t tag[GX_GCM_TAG_LEN]);

/* Two packets at once (same key size and nonce, keys of their own), each as gx_gcm_seal / gx_gcm_open:
 * the two interleave chunk by chunk, which takes less time than one after the other. seal2: 0 or
 * -EINVAL. open2: a mask with bit i set when packet i's tag did not match (that buffer is left as it
 * was), or -EINVAL. */
int gx_gcm_seal2(const uint8_t *const key[2], size_t key_len, const uint8_t nonce[GX_GCM_NONCE_LEN],
                 uint8_t *const buf[2], const size_t len[2], uint8_t *const tag[2]);
int gx_gcm_open2(const uint8_t *const key[2], size_t key_len, const uint8_t nonce[GX_GCM_NONCE_LEN],
                 uint8_t *const buf[2], const size_t len[2], const uint8_t *const tag[2]);

/* Process-wide choice (tests, benchmarks; GX_CRYPTO=openssl in the environment makes the automatic
 * choice OpenSSL, for HKDF too; a build with GX_NO_SIMD has none of ours). Returns the
 * implementation now in use, -ENOTSUP if one of ours was asked for and the CPU lacks what it needs,
 * -EINVAL. */
int gx_gcm_set_impl(int impl);
int gx_gcm_impl(void);
/* 1 if our SIMD crypto (AES-GCM and HKDF) is compiled in, 0 for a GX_NO_SIMD build (or another CPU
 * architecture). */
int gx_crypto_simd(void);

#endif
