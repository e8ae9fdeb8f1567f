/* gx/crypto.h: the public interface of csrc/crypto/ (one header per csrc folder).
 * Sections: aead, gcm, hkdf, replay. */
#ifndef GX_CRYPTO_H
#define GX_CRYPTO_H

/* Shadowsocks AEAD UDP packet framing, as gost's tun/tap tunnel uses it:
 *   datagram = salt || AEAD_seal(subkey, nonce = 12 zero bytes, plaintext, no AD) (tag 16 bytes)
 *   key      = EVP_BytesToKey(MD5, password), subkey = HKDF-SHA1(key, salt, "ss-subkey")
 *   salt len = max(key len, 16)
 * Seal and open work in place on whole batches (OpenSSL EVP; contexts made once per key).
 *
 * Threads: one gx_aead may be used by any number of threads. Seals are serialised by one mutex and
 * opens by another (each taken once per call), so one thread sealing and one opening run in
 * parallel without waiting for each other. Both share the salt replay filter (gx/crypto.h), whose
 * mutex is taken once or twice per batch.
 *
 * Replay filter: every salt of an authentic datagram this gx_aead opened is remembered (at least
 * the last GX_AEAD_REPLAY_DEFAULT, or replay_capacity of gx_aead_new_ex); a datagram with a
 * remembered salt is dropped. Forged datagrams never enter the filter. The salts this gx_aead makes
 * (AES-128 of a counter under a key of its own) need no entry: a datagram that carries one of them
 * is recognised as reflected and dropped too (a salt given to gx_aead_seal_one is remembered
 * instead). With the filter off (capacity 0) neither check runs. The filter lives in the gx_aead:
 * keep one gx_aead per key for as long as the key is in use.
 */

#include <stddef.h>
#include <stdint.h>
#include "gx/base.h"

enum gx_cipher {
    GX_CIPHER_NONE = 0,           /* "dummy" / "none": plaintext */
    GX_CIPHER_AES_128_GCM,
    GX_CIPHER_AES_192_GCM,
    GX_CIPHER_AES_256_GCM,
    GX_CIPHER_CHACHA20_POLY1305,
};

#define GX_AEAD_TAG_LEN 16
#define GX_AEAD_MAX_SALT 32
#define GX_AEAD_MAX_KEY 32
#define GX_AEAD_REPLAY_DEFAULT 1000000   /* salts remembered; go-shadowsocks2's default capacity */

struct gx_aead_drops {            /* counters of packets open dropped, by reason */
    uint64_t short_pkt;           /* shorter than salt + tag */
    uint64_t auth;                /* tag check failed: forged, corrupt or wrong key */
    uint64_t replay;              /* salt seen before */
};

struct gx_aead;                   /* opaque: key, EVP contexts, replay filter */

/* Cipher name (case-insensitive; AEAD_* aliases; "dummy"/"none") -> enum gx_cipher, or -EINVAL. */
int gx_aead_lookup(const char *name);
/* Comma-separated list of the supported names, for error messages. */
const char *gx_aead_supported(void);
/* Canonical lower-case name of a cipher ("aes-256-gcm", ..., "none"), or NULL. */
const char *gx_aead_name(int cipher);
/* Key length in bytes (0 for GX_CIPHER_NONE), or -EINVAL. */
int gx_aead_key_len(int cipher);
/* Derive the key (gx_aead_key_len bytes) from the password with EVP_BytesToKey(MD5). An empty
 * password is allowed. 0 or -errno. */
int gx_aead_derive_key(int cipher, const uint8_t *password, size_t pwlen, uint8_t *key_out);
/* New context from a cipher and a key of gx_aead_key_len bytes (NULL for GX_CIPHER_NONE), with a
 * replay filter of GX_AEAD_REPLAY_DEFAULT salts. 0 or -errno (-EINVAL, -ENOMEM, -ENOSYS when
 * OpenSSL lacks the cipher). */
int gx_aead_new(struct gx_aead **out, int cipher, const uint8_t *key);
/* The same with the replay filter's capacity in salts; 0 turns the filter off. */
int gx_aead_new_ex(struct gx_aead **out, int cipher, const uint8_t *key, size_t replay_capacity);
void gx_aead_free(struct gx_aead *a);
int gx_aead_cipher(const struct gx_aead *a);
size_t gx_aead_salt_len(const struct gx_aead *a);   /* 0 for GX_CIPHER_NONE */
size_t gx_aead_overhead(const struct gx_aead *a);   /* salt + tag; 0 for GX_CIPHER_NONE */
/* The subkey of a salt (salt_len bytes) into out (key_len bytes): key_len, or -EINVAL for NONE.
 * For tests (known-answer subkeys); the batch calls derive subkeys 16 at a time. */
int gx_aead_subkey(const struct gx_aead *a, const uint8_t *salt, uint8_t *out);
/* Running totals of the packets open_batch/open_one dropped. */
void gx_aead_drops_total(struct gx_aead *a, struct gx_aead_drops *out);

/* Batches. pkt[i].data must lie in slot i (gx_batch_slot(b, i)); packets with len 0 are skipped.
 * A packet outside its slot, or without the room below, fails the whole call with -EINVAL before
 * any packet is touched (a caller bug, not a network condition).
 * With GX_CIPHER_NONE both calls only count the packets with len > 0. */

/* Seal every packet with len > 0: a fresh random salt in front (pkt.data moves back by salt_len)
 * and the tag behind (len grows by the overhead). Needs salt_len bytes before pkt.data and 16 after
 * the packet inside its slot (GX_HEADROOM/GX_TAILROOM give that). Returns packets sealed, -EINVAL,
 * or -EIO if OpenSSL failed (the batch is then in an unspecified state). */
int gx_aead_seal_batch(struct gx_aead *a, struct gx_batch *b);
/* Open every packet with len > 0 in place (pkt.data moves past the salt, len shrinks by the
 * overhead; a datagram of exactly salt + tag opens to len 0). A short, forged or replayed packet
 * gets len = 0 with pkt.data unchanged (so the two cases of len 0 can be told apart; a forged one's
 * bytes are never left decrypted: the ciphertext again, or wiped) and is counted
 * in *drops (added to it, if drops is not NULL) and in the running totals; the other packets are
 * untouched. Returns packets opened, or -EINVAL. */
int gx_aead_open_batch(struct gx_aead *a, struct gx_batch *b, struct gx_aead_drops *drops);

/* One packet, for tests and the Python binding. seal: out must hold len + overhead; salt may be
 * NULL (random), else salt_len bytes; in and out may overlap. open: out must hold len bytes (it is
 * used as scratch; only authentic plaintext is left in it, at its start); in is not changed.
 * Return the output length or -errno (-EBADMSG forged, -EALREADY replay, -EMSGSIZE short,
 * -EINVAL bad arguments, -EIO OpenSSL failed). Drops are counted in the running totals. */
int gx_aead_seal_one(struct gx_aead *a, const uint8_t *salt, const uint8_t *in, size_t len, uint8_t *out);
int gx_aead_open_one(struct gx_aead *a, const uint8_t *in, size_t len, uint8_t *out);

/* One AEAD operation with the caller's key and nonce, through the same code the packets take (our
 * AES-GCM or OpenSSL's EVP, as gx_gcm_impl() chooses): for known-answer tests (Wycheproof) of every
 * implementation. The packets never have other sizes, so key_len must be the cipher's, nonce_len 12
 * and tag_len 16: anything else is refused with -EINVAL (not truncated or padded). No additional data.
 * seal: buf (len bytes) encrypted in place, tag written; 0 or -errno. open: 0 and buf decrypted, or
 * -EBADMSG and no unauthenticated plaintext in buf (the ciphertext again, or wiped), or -EINVAL. */
int gx_aead_seal_raw(int cipher, const uint8_t *key, size_t key_len, const uint8_t *nonce, size_t nonce_len,
                     uint8_t *buf, size_t len, uint8_t *tag, size_t tag_len);
int gx_aead_open_raw(int cipher, const uint8_t *key, size_t key_len, const uint8_t *nonce, size_t nonce_len,
                     uint8_t *buf, size_t len, const uint8_t *tag, size_t tag_len);

/* AES-GCM for one packet with a fresh key, for the Shadowsocks-AEAD UDP format (gx/crypto.h).
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

/* Salt replay filter for the Shadowsocks AEAD packet format.
 *
 * An exact set of recently seen salts with bounded memory: two generations of a bucketed hash table
 * of 32-bit fingerprints (16 per 64-byte bucket, filled to at most 75 %). New salts go into the
 * current generation; when it holds `capacity` salts the older generation is cleared and becomes
 * the current one. So the filter remembers at least the last `capacity` salts and at most 2 x that,
 * in about 10.7 bytes per salt of capacity (10.7 MB for the default 1e6, committed lazily).
 *
 * A lookup compares the salt's 32-bit fingerprint with the 16-32 in one or two buckets of each
 * generation: a new salt is taken for a replay with a probability below 1e-8 (go-shadowsocks2's
 * Bloom ring accepts 1e-6). The bucket index and the fingerprint come from a hash keyed with random bytes
 * drawn at creation, so a peer cannot aim salts at one bucket.
 *
 * Locking: gx_replay_check and gx_replay_add must be called with the lock held, so that a caller
 * can take it once for a whole batch.
 */


struct gx_replay;

/* New filter for salts of salt_len bytes (a multiple of 8, 8..32) that remembers at least the last
 * capacity salts (capacity >= 1). 0 or -errno. */
int gx_replay_new(struct gx_replay **out, size_t capacity, size_t salt_len);
void gx_replay_free(struct gx_replay *r);
void gx_replay_lock(struct gx_replay *r);
void gx_replay_unlock(struct gx_replay *r);
/* Start loading the memory a check/add of this salt will read: call it for a whole batch first,
 * so that the cache misses overlap. Needs no lock (reads only immutable fields). */
void gx_replay_prefetch(const struct gx_replay *r, const uint8_t *salt);
/* 1 if the salt is in the filter, else 0. Lock held. */
int gx_replay_check(const struct gx_replay *r, const uint8_t *salt);
/* Add the salt: 1 if it was new, 0 if it was already there (a replay). Lock held. */
int gx_replay_add(struct gx_replay *r, const uint8_t *salt);
/* Salts the filter remembers now (both generations). Lock held. */
size_t gx_replay_count(const struct gx_replay *r);

#endif /* GX_CRYPTO_H */
