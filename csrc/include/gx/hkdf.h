/* HKDF-SHA1 (RFC 5869) for the Shadowsocks-AEAD per-packet subkey: IKM = the key (fixed per context),
 * salt = the packet's salt (<= 32 bytes), info = "ss-subkey", output = key_len (<= 32) bytes.
 *
 * This is the known cost of the format (one HKDF per packet). Every HMAC here hashes messages that
 * fit in one padded 64-byte block, so the whole derivation is 8 SHA-1 block operations for 16-byte
 * keys and 10 for 24/32-byte keys. Up to GX_HKDF_LANES salts are derived together: with AVX-512 (and
 * at least 4 salts) the sixteen derivations run in the 32-bit lanes of the vector registers from the
 * salts to the subkeys without leaving them; otherwise the blocks, prebuilt per key and per lane, go
 * through SHA-NI two lanes interleaved (sha1_shani.c), or OpenSSL's SHA1_Transform (what each costs:
 * bench/README.md, "Figures behind design choices").
 */
#ifndef GX_HKDF_H
#define GX_HKDF_H

#include <stddef.h>
#include <stdint.h>

#define GX_HKDF_LANES 16
#define GX_HKDF_MAX_KEY 32
#define GX_HKDF_MAX_SALT 32
#define GX_HKDF_MAX_INFO 34       /* T1 || info || 2 and its padding fit in one block */

enum gx_hkdf_impl {
    GX_HKDF_AUTO = 0,             /* AVX-512 if the CPU has it, else SHA-NI, else OpenSSL */
    GX_HKDF_OPENSSL = 1,          /* OpenSSL's SHA1_Transform (SHA-NI/AVX2 inside), one block at a time */
    GX_HKDF_AVX512 = 2,           /* ours: 16 derivations at once in AVX-512 lanes (x86-64 only) */
    GX_HKDF_SHANI = 3,            /* ours: SHA-NI, the blocks of two derivations interleaved */
};

struct gx_hkdf_key {              /* read-only after gx_hkdf_key_init */
    size_t key_len, salt_len;
    size_t out_len;               /* bytes derived: key_len for Shadowsocks */
    uint8_t ext_inner[64];        /* key || 0x80 || 0.. || bitlen(64 + key_len) */
    uint8_t t1_inner[64];         /* info ("ss-subkey") 0x01 || 0x80 || 0.. || bitlen(64 + info_len + 1) */
    uint8_t t2_inner[64];         /* 20 zero bytes (T1 goes there) || info 0x02 || 0x80 || 0.. || bitlen */
    uint32_t ext_wk[80], t1_wk[80];   /* their message schedules, W[t] + K[t] (the AVX-512 path) */
    uint32_t t2_tail[10];         /* t2_inner's words 5.. up to its 0x80 byte (the AVX-512 path) */
    int t2_ntail;
};

struct gx_hkdf_lane {             /* blocks one derivation writes into (tails prebuilt) */
    uint8_t salt_ipad[64];
    uint8_t salt_opad[64];
    uint8_t prk_ipad[64];
    uint8_t prk_opad[64];
    uint8_t outer[64];            /* 20-byte inner hash || 0x80 || 0.. || bitlen(64 + 20) */
    uint8_t t2_inner[64];         /* T1 || "ss-subkey" 0x02 || 0x80 || 0.. || bitlen(64 + 30) */
};

struct gx_hkdf_work {             /* scratch of one thread at a time */
    struct gx_hkdf_lane lane[GX_HKDF_LANES];
};

/* key_len and salt_len in 1..32; info "ss-subkey", key_len bytes out. 0 or -EINVAL. */
int gx_hkdf_key_init(struct gx_hkdf_key *k, const uint8_t *key, size_t key_len, size_t salt_len);
/* Any info of 0..GX_HKDF_MAX_INFO bytes and out_len of 1..32 (for known-answer tests); other sizes are
 * refused with -EINVAL. Wipe the key with gx_hkdf_key_wipe when done. */
int gx_hkdf_key_init_ex(struct gx_hkdf_key *k, const uint8_t *key, size_t key_len, size_t salt_len,
                        const uint8_t *info, size_t info_len, size_t out_len);
void gx_hkdf_key_wipe(struct gx_hkdf_key *k);
void gx_hkdf_work_init(struct gx_hkdf_work *w);
/* out[i] (out_len bytes) = HKDF-SHA1(key, salts[i], info) for i < n (n <= GX_HKDF_LANES). Nothing
 * secret stays in w afterwards (its key-dependent bytes are wiped). */
void gx_hkdf_derive(const struct gx_hkdf_key *k, struct gx_hkdf_work *w, const uint8_t *const salts[],
                    uint8_t *const out[], int n);
/* Choose the SHA-1 block code (for tests and benchmarks; process-wide). Returns the implementation
 * now in use (GX_HKDF_OPENSSL, GX_HKDF_AVX512 or GX_HKDF_SHANI), or -ENOTSUP if AVX-512 or SHA-NI
 * was asked for and the CPU lacks it (the choice is then unchanged), -EINVAL for an unknown value.
 * With GX_HKDF_AVX512, fewer than four salts take the SHA-NI block path where the CPU has it. */
int gx_hkdf_set_impl(int impl);
int gx_hkdf_impl(void);

#endif
