/* Shadowsocks AEAD UDP packet framing, as gost's tun/tap tunnel uses it (spec tuntap.md 2.2):
 *   datagram = salt || AEAD_seal(subkey, nonce = 12 zero bytes, plaintext, no AD) (tag 16 bytes)
 *   key      = EVP_BytesToKey(MD5, password), subkey = HKDF-SHA1(key, salt, "ss-subkey")
 *   salt len = max(key len, 16)
 * Seal and open work in place on whole batches (OpenSSL EVP; contexts made once per key).
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

struct gx_aead_drops {            /* counters of packets open_batch dropped, by reason */
    uint64_t short_pkt;           /* shorter than salt + tag */
    uint64_t auth;                /* tag check failed: forged, corrupt or wrong key */
    uint64_t replay;              /* salt seen before */
};

struct gx_aead;                   /* opaque: key, EVP contexts, replay filter */

/* Cipher name (case-insensitive; AEAD_* aliases; "dummy"/"none") -> enum, or -EINVAL. */
int gx_aead_lookup(const char *name);
/* Comma-separated list of the supported names, for error messages. */
const char *gx_aead_supported(void);
int gx_aead_key_len(int cipher);
/* Derive the key from the password with EVP_BytesToKey(MD5). */
int gx_aead_derive_key(int cipher, const uint8_t *password, size_t pwlen, uint8_t *key_out);
/* New context from a cipher and a key of gx_aead_key_len bytes. 0 or -errno. */
int gx_aead_new(struct gx_aead **out, int cipher, const uint8_t *key);
void gx_aead_free(struct gx_aead *a);
size_t gx_aead_salt_len(const struct gx_aead *a);
size_t gx_aead_overhead(const struct gx_aead *a);   /* salt + tag */

/* Seal every packet with len > 0: a fresh random salt in front (pkt.data moves back by salt_len)
 * and the tag behind. Needs headroom >= salt_len and room for the tag. Returns packets sealed. */
int gx_aead_seal_batch(struct gx_aead *a, struct gx_batch *b);
/* Open every packet with len > 0 in place (pkt.data moves past the salt, len shrinks by the
 * overhead). A short, forged or replayed packet gets len = 0 and is counted in drops; the rest of
 * the batch is untouched. Returns packets opened. Thread-safe against a concurrent seal. */
int gx_aead_open_batch(struct gx_aead *a, struct gx_batch *b, struct gx_aead_drops *drops);

/* One packet, for tests and the Python binding: out must hold len + overhead (seal) or len (open).
 * salt may be NULL (random). Return the output length or -errno (-EBADMSG forged, -EALREADY replay,
 * -EMSGSIZE short). */
int gx_aead_seal_one(struct gx_aead *a, const uint8_t *salt, const uint8_t *in, size_t len, uint8_t *out);
int gx_aead_open_one(struct gx_aead *a, const uint8_t *in, size_t len, uint8_t *out);

#endif
