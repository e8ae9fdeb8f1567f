/* Shadowsocks AEAD UDP packet framing, as gost's tun/tap tunnel uses it:
 *   datagram = salt || AEAD_seal(subkey, nonce = 12 zero bytes, plaintext, no AD) (tag 16 bytes)
 *   key      = EVP_BytesToKey(MD5, password), subkey = HKDF-SHA1(key, salt, "ss-subkey")
 *   salt len = max(key len, 16)
 * Seal and open work in place on whole batches (OpenSSL EVP; contexts made once per key).
 *
 * Threads: one gx_aead may be used by any number of threads. Seals are serialised by one mutex and
 * opens by another (each taken once per call), so one thread sealing and one opening run in
 * parallel without waiting for each other. Both share the salt replay filter (gx/replay.h), whose
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
#ifndef GX_AEAD_H
#define GX_AEAD_H

#include <stddef.h>
#include <stdint.h>
#include "gx/batch.h"

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

#endif
