/* Shadowsocks AEAD UDP packets (gx/crypto.h): seal/open in place over whole batches.
 *
 * Per packet the work is: the HKDF-SHA1 subkey (the known cost of this format), one AEAD key setup
 * and the AEAD pass over the bytes. Everything else is per gx_aead or per batch: the EVP cipher is
 * fetched and one EVP_CIPHER_CTX per direction is made at creation; a whole batch's salts come
 * from one AES-ECB call (see "Our salts" below); each direction's mutex and the replay filter's
 * mutex are taken once per batch.
 *
 * Our salts are AES-128 under a random key of this gx_aead (drawn once, never leaves it) of
 * TAG || counter: a pseudorandom permutation of distinct inputs, so they are unpredictable and
 * never repeat, and the opening side recognises its own by decrypting a salt's first block and
 * finding TAG (a peer's random salt does that with probability 2^-64). A reflected datagram is
 * refused that way, and so the replay filter holds only the peers' salts: the seal path touches
 * no table, and the filter's capacity all goes to what peers sent. Salts longer than 16 bytes take
 * a second block (block number 1 in TAG's low bits).
 *
 * AES-128-GCM and AES-256-GCM go through gx/crypto.h when the CPU has VAES (the EVP re-key per packet
 * costs more than the encryption itself); EVP does the rest, and all of them without VAES.
 *
 * The subkeys are derived up to 16 packets at a time (gx/crypto.h): that is where the time goes, and
 * hashing 16 packets' SHA-1 blocks together in vector lanes is what makes it fast (bench/README.md).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "gx/crypto.h"
#include "gx/base.h"

/* ---- cipher table ---------------------------------------------------------------------------- */

struct cipher_info {
    const char *name;             /* canonical name */
    const char *evp_name;         /* OpenSSL fetch name */
    size_t key_len;
};

static const struct cipher_info CIPHERS[] = {
    [GX_CIPHER_NONE] = {"none", NULL, 0},
    [GX_CIPHER_AES_128_GCM] = {"aes-128-gcm", "AES-128-GCM", 16},
    [GX_CIPHER_AES_192_GCM] = {"aes-192-gcm", "AES-192-GCM", 24},
    [GX_CIPHER_AES_256_GCM] = {"aes-256-gcm", "AES-256-GCM", 32},
    [GX_CIPHER_CHACHA20_POLY1305] = {"chacha20-ietf-poly1305", "ChaCha20-Poly1305", 32},
};
#define NCIPHERS ((int)(sizeof(CIPHERS) / sizeof(CIPHERS[0])))

static const struct {
    const char *name;
    int cipher;
} NAMES[] = {
    {"aes-128-gcm", GX_CIPHER_AES_128_GCM},
    {"aes-192-gcm", GX_CIPHER_AES_192_GCM},
    {"aes-256-gcm", GX_CIPHER_AES_256_GCM},
    {"chacha20-ietf-poly1305", GX_CIPHER_CHACHA20_POLY1305},
    {"AEAD_AES_128_GCM", GX_CIPHER_AES_128_GCM},
    {"AEAD_AES_192_GCM", GX_CIPHER_AES_192_GCM},
    {"AEAD_AES_256_GCM", GX_CIPHER_AES_256_GCM},
    {"AEAD_CHACHA20_POLY1305", GX_CIPHER_CHACHA20_POLY1305},
    {"dummy", GX_CIPHER_NONE},
    {"none", GX_CIPHER_NONE},
};

int gx_aead_lookup(const char *name) {
    if (name == NULL)
        return -EINVAL;
    for (size_t i = 0; i < sizeof(NAMES) / sizeof(NAMES[0]); i++)
        if (strcasecmp(name, NAMES[i].name) == 0)
            return NAMES[i].cipher;
    return -EINVAL;
}

const char *gx_aead_supported(void) {
    return "aes-128-gcm, aes-192-gcm, aes-256-gcm, chacha20-ietf-poly1305, AEAD_AES_128_GCM, "
           "AEAD_AES_192_GCM, AEAD_AES_256_GCM, AEAD_CHACHA20_POLY1305, dummy, none";
}

const char *gx_aead_name(int cipher) {
    if (cipher < 0 || cipher >= NCIPHERS)
        return NULL;
    return CIPHERS[cipher].name;
}

int gx_aead_key_len(int cipher) {
    if (cipher < 0 || cipher >= NCIPHERS)
        return -EINVAL;
    return (int)CIPHERS[cipher].key_len;
}

static size_t salt_len_for(size_t key_len) {
    return key_len == 0 ? 0 : key_len < 16 ? 16 : key_len;
}

/* EVP_BytesToKey(MD5, no salt, 1 iteration): D1 = MD5(pw), Di = MD5(D(i-1) || pw). */
int gx_aead_derive_key(int cipher, const uint8_t *password, size_t pwlen, uint8_t *key_out) {
    int key_len = gx_aead_key_len(cipher);
    if (key_len < 0)
        return key_len;
    if (key_len == 0)
        return 0;
    if (password == NULL && pwlen != 0)
        return -EINVAL;
    EVP_MD *md5 = EVP_MD_fetch(NULL, "MD5", NULL);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    uint8_t d[16];
    int rc = (md5 != NULL && ctx != NULL) ? 0 : -ENOSYS;
    for (int off = 0; rc == 0 && off < key_len; off += 16) {
        unsigned int dlen = 0;
        if (EVP_DigestInit_ex2(ctx, md5, NULL) != 1 || (off > 0 && EVP_DigestUpdate(ctx, d, 16) != 1) ||
            (pwlen > 0 && EVP_DigestUpdate(ctx, password, pwlen) != 1) ||
            EVP_DigestFinal_ex(ctx, d, &dlen) != 1 || dlen != 16) {
            rc = -EIO;
            break;
        }
        memcpy(key_out + off, d, (size_t)(key_len - off) < 16 ? (size_t)(key_len - off) : 16);
    }
    OPENSSL_cleanse(d, sizeof(d));
    EVP_MD_CTX_free(ctx);
    EVP_MD_free(md5);
    return rc;
}

/* ---- the context ------------------------------------------------------------------------------ */

/* Seal and open run in two threads: each direction (and the seal salts) on cache lines of its own. */
#define CACHE_LINE 64

#define SALT_BLOCKS_MAX ((GX_AEAD_MAX_SALT + 15) / 16)
#define OWN_TAG_MASK (~(uint64_t)3)  /* TAG's low two bits: the block number within a salt */

struct direction {                /* the state of one direction, used under its lock */
    _Alignas(CACHE_LINE) pthread_mutex_t lock;
    EVP_CIPHER_CTX *ctx;
    struct gx_hkdf_work hw;
    uint8_t subkey[GX_HKDF_LANES][GX_AEAD_MAX_KEY];
};

struct gx_aead {
    int cipher;
    int gcm_own;                  /* AES-128/256-GCM: gx/crypto.h can do it when the CPU has VAES */
    size_t key_len, salt_len;
    struct gx_hkdf_key hk;
    EVP_CIPHER *evp;
    struct direction seal, open;
    struct gx_replay *replay;     /* NULL: replay filter off */
    struct gx_aead_drops drops;   /* running totals, under open.lock */
    int locks_ready;
    EVP_CIPHER_CTX *own_enc;      /* our salts: AES-128-ECB, under seal.lock */
    EVP_CIPHER_CTX *own_dec;      /* recognising them: under open.lock */
    uint64_t own_tag;             /* random, low two bits 0 */
    uint64_t own_ctr;             /* salts made so far, under seal.lock */
    _Alignas(CACHE_LINE) uint8_t salts[GX_BATCH_MAX * GX_AEAD_MAX_SALT];   /* seal: a batch's salts */
    uint8_t own_blocks[GX_BATCH_MAX * SALT_BLOCKS_MAX * 16];   /* seal: AES input, then output */
};

static const uint8_t ZERO_NONCE[12];

static size_t salt_blocks(const struct gx_aead *a) {
    return (a->salt_len + 15) / 16;
}

/* n (<= GX_BATCH_MAX) fresh salts of ours, salt_len bytes each, into dst. 0 or -EIO. Seal lock held. */
static int make_salts(struct gx_aead *a, uint8_t *dst, uint32_t n) {
    if (n > GX_BATCH_MAX)
        return -EINVAL;
    size_t nb = salt_blocks(a);
    uint8_t *blk = a->own_blocks;
    for (uint32_t i = 0; i < n; i++) {
        for (size_t k = 0; k < nb; k++) {
            wr64be(blk + 16 * (i * nb + k), a->own_tag | k);
            wr64be(blk + 16 * (i * nb + k) + 8, a->own_ctr + i);
        }
    }
    int len = (int)(16 * n * nb), outl = 0;
    if (EVP_EncryptUpdate(a->own_enc, blk, &outl, blk, len) != 1 || outl != len)
        return -EIO;
    a->own_ctr += n;
    for (uint32_t i = 0; i < n; i++)
        memcpy(dst + i * a->salt_len, blk + 16 * i * nb, a->salt_len);
    OPENSSL_cleanse(blk, (size_t)len);
    return 0;
}

/* 1 if the first 16 bytes of a salt decrypt under our salt key to block 0 of TAG: one of ours. */
static int own_block(const struct gx_aead *a, const uint8_t plain[16]) {
    return rd64be(plain) == a->own_tag;
}

/* Drop (len = 0, todo 0, counted as replays) the packets with todo[i] set whose salt is one of
 * ours: reflected back to us. Open lock held. */
static void drop_own_salts(struct gx_aead *a, struct gx_batch *b, uint8_t *todo, uint64_t *replays) {
    uint8_t blk[GX_BATCH_MAX * 16];
    uint32_t at[GX_BATCH_MAX], n = 0;
    for (uint32_t i = 0; i < b->n; i++) {
        if (todo[i]) {
            memcpy(blk + 16 * n, b->pkt[i].data, 16);
            at[n++] = i;
        }
    }
    if (n == 0)
        return;
    int len = (int)(16 * n), outl = 0;
    int failed = EVP_DecryptUpdate(a->own_dec, blk, &outl, blk, len) != 1 || outl != len;
    for (uint32_t c = 0; c < n; c++) {
        if (failed || own_block(a, blk + 16 * c)) {    /* failed: never seen; then fail closed */
            todo[at[c]] = 0;
            b->pkt[at[c]].len = 0;
            (*replays)++;
        }
    }
}

/* The same for one datagram: 1 if its salt is ours (or the check failed), else 0. Open lock held. */
static int own_salt(struct gx_aead *a, const uint8_t *salt) {
    uint8_t blk[16];
    int outl = 0;
    if (EVP_DecryptUpdate(a->own_dec, blk, &outl, salt, 16) != 1 || outl != 16)
        return 1;
    return own_block(a, blk);
}

size_t gx_aead_salt_len(const struct gx_aead *a) {
    return a->salt_len;
}

size_t gx_aead_overhead(const struct gx_aead *a) {
    return a->cipher == GX_CIPHER_NONE ? 0 : a->salt_len + GX_AEAD_TAG_LEN;
}

int gx_aead_cipher(const struct gx_aead *a) {
    return a->cipher;
}

void gx_aead_free(struct gx_aead *a) {
    if (a == NULL)
        return;
    EVP_CIPHER_CTX_free(a->seal.ctx);
    EVP_CIPHER_CTX_free(a->open.ctx);
    EVP_CIPHER_CTX_free(a->own_enc);
    EVP_CIPHER_CTX_free(a->own_dec);
    EVP_CIPHER_free(a->evp);
    gx_replay_free(a->replay);
    if (a->locks_ready) {
        pthread_mutex_destroy(&a->seal.lock);
        pthread_mutex_destroy(&a->open.lock);
    }
    OPENSSL_cleanse(a, sizeof(*a));
    free(a);
}

/* The key and TAG of our salts, drawn once. 0 or -errno. */
static int own_salts_init(struct gx_aead *a) {
    uint8_t key[16], tag[8];
    int rc = 0;
    EVP_CIPHER *ecb = EVP_CIPHER_fetch(NULL, "AES-128-ECB", NULL);
    a->own_enc = EVP_CIPHER_CTX_new();
    a->own_dec = EVP_CIPHER_CTX_new();
    if (ecb == NULL)
        rc = -ENOSYS;
    else if (a->own_enc == NULL || a->own_dec == NULL)
        rc = -ENOMEM;
    else if (RAND_bytes(key, sizeof(key)) != 1 || RAND_bytes(tag, sizeof(tag)) != 1 ||
             EVP_EncryptInit_ex(a->own_enc, ecb, NULL, key, NULL) != 1 ||
             EVP_DecryptInit_ex(a->own_dec, ecb, NULL, key, NULL) != 1 ||
             EVP_CIPHER_CTX_set_padding(a->own_enc, 0) != 1 || EVP_CIPHER_CTX_set_padding(a->own_dec, 0) != 1)
        rc = -EIO;
    a->own_tag = rd64be(tag) & OWN_TAG_MASK;
    a->own_ctr = 0;
    EVP_CIPHER_free(ecb);
    OPENSSL_cleanse(key, sizeof(key));
    return rc;
}

int gx_aead_new_ex(struct gx_aead **out, int cipher, const uint8_t *key, size_t replay_capacity) {
    *out = NULL;
    int key_len = gx_aead_key_len(cipher);
    if (key_len < 0 || (key_len > 0 && key == NULL))
        return -EINVAL;
    struct gx_aead *a = aligned_alloc(CACHE_LINE, sizeof(*a));   /* sizeof is a multiple of 64 */
    if (a == NULL)
        return -ENOMEM;
    memset(a, 0, sizeof(*a));
    a->cipher = cipher;
    a->key_len = (size_t)key_len;
    a->salt_len = salt_len_for(a->key_len);
    if (pthread_mutex_init(&a->seal.lock, NULL) != 0) {
        free(a);
        return -ENOMEM;
    }
    if (pthread_mutex_init(&a->open.lock, NULL) != 0) {
        pthread_mutex_destroy(&a->seal.lock);
        free(a);
        return -ENOMEM;
    }
    a->locks_ready = 1;
    if (cipher == GX_CIPHER_NONE) {
        *out = a;
        return 0;
    }
    int rc = gx_hkdf_key_init(&a->hk, key, a->key_len, a->salt_len);
    gx_hkdf_work_init(&a->seal.hw);
    gx_hkdf_work_init(&a->open.hw);
    a->gcm_own = cipher == GX_CIPHER_AES_128_GCM || cipher == GX_CIPHER_AES_256_GCM;
    a->evp = EVP_CIPHER_fetch(NULL, CIPHERS[cipher].evp_name, NULL);
    a->seal.ctx = EVP_CIPHER_CTX_new();
    a->open.ctx = EVP_CIPHER_CTX_new();
    if (rc == 0 && a->evp == NULL)
        rc = -ENOSYS;
    if (rc == 0 && (a->seal.ctx == NULL || a->open.ctx == NULL))
        rc = -ENOMEM;
    if (rc == 0 && (EVP_EncryptInit_ex(a->seal.ctx, a->evp, NULL, NULL, NULL) != 1 ||
             EVP_DecryptInit_ex(a->open.ctx, a->evp, NULL, NULL, NULL) != 1 ||
             EVP_CIPHER_CTX_get_iv_length(a->seal.ctx) != (int)sizeof(ZERO_NONCE) ||
             EVP_CIPHER_CTX_get_key_length(a->seal.ctx) != key_len))
        rc = -EIO;
    if (rc == 0)
        rc = own_salts_init(a);
    if (rc == 0 && replay_capacity > 0)
        rc = gx_replay_new(&a->replay, replay_capacity, a->salt_len);
    if (rc < 0) {
        gx_aead_free(a);
        return rc;
    }
    *out = a;
    return 0;
}

int gx_aead_new(struct gx_aead **out, int cipher, const uint8_t *key) {
    return gx_aead_new_ex(out, cipher, key, GX_AEAD_REPLAY_DEFAULT);
}

void gx_aead_drops_total(struct gx_aead *a, struct gx_aead_drops *out) {
    pthread_mutex_lock(&a->open.lock);
    *out = a->drops;
    pthread_mutex_unlock(&a->open.lock);
}

int gx_aead_subkey(const struct gx_aead *a, const uint8_t *salt, uint8_t *out) {
    if (a->cipher == GX_CIPHER_NONE)
        return -EINVAL;
    struct gx_hkdf_work w;
    gx_hkdf_work_init(&w);
    gx_hkdf_derive(&a->hk, &w, &salt, &out, 1);
    OPENSSL_cleanse(&w, sizeof(w));
    return (int)a->key_len;
}

/* ---- one packet, in place --------------------------------------------------------------------- */

/* Get (set = 0) or set (set = 1) the 16-byte tag. Through params rather than EVP_CIPHER_CTX_ctrl,
 * which OpenSSL 3 translates into params with a name lookup on every call. 1 on success. */
static int tag_param(EVP_CIPHER_CTX *ctx, uint8_t *tag, int set) {
    OSSL_PARAM p[2] = {OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag, GX_AEAD_TAG_LEN),
                       OSSL_PARAM_construct_end()};
    return set ? EVP_CIPHER_CTX_set_params(ctx, p) == 1 : EVP_CIPHER_CTX_get_params(ctx, p) == 1;
}

/* Our AES-GCM (gx/crypto.h) for this cipher, given the implementation chosen now? */
static int gcm_own_for(int cipher) {
    return (cipher == GX_CIPHER_AES_128_GCM || cipher == GX_CIPHER_AES_256_GCM) && gx_gcm_impl() != GX_GCM_OPENSSL;
}

/* Our AES-GCM, which can also do two packets at once (gx_gcm_seal2/open2)? */
static int gcm_pairs(const struct gx_aead *a) {
    return a->gcm_own && gx_gcm_impl() != GX_GCM_OPENSSL;
}

/* Encrypt body (len bytes) in place under key and a 12-byte nonce, the tag to tag: ours when own,
 * else EVP on ctx (initialised for encryption with the cipher). 0 or -EIO. */
static int body_seal(EVP_CIPHER_CTX *ctx, int own, const uint8_t *key, size_t key_len, const uint8_t *nonce,
                     uint8_t *body, size_t len, uint8_t *tag) {
    int outl = 0, fl = 0;
    if (own)
        return gx_gcm_seal(key, key_len, nonce, body, len, tag) == 0 ? 0 : -EIO;
    if (EVP_EncryptInit_ex(ctx, NULL, NULL, key, nonce) != 1 ||
        (len > 0 && EVP_EncryptUpdate(ctx, body, &outl, body, (int)len) != 1) ||
        EVP_EncryptFinal_ex(ctx, body + outl, &fl) != 1 || (size_t)outl + (size_t)fl != len ||
        !tag_param(ctx, tag, 0))
        return -EIO;
    return 0;
}

/* Decrypt body in place and check its tag: 0, or -EBADMSG with no unauthenticated plaintext left in
 * body. Neither path checks the tag first: ours decrypts while hashing and puts the ciphertext back on
 * a mismatch (gx/crypto.h); EVP checks the tag in its final call, after the decryption, so on a failure
 * body is wiped. ctx: initialised for decryption with the cipher. */
static int body_open(EVP_CIPHER_CTX *ctx, int own, const uint8_t *key, size_t key_len, const uint8_t *nonce,
                     uint8_t *body, size_t len, const uint8_t *tag) {
    int outl = 0, fl = 0;
    if (own)
        return gx_gcm_open(key, key_len, nonce, body, len, tag) == 0 ? 0 : -EBADMSG;
    if (EVP_DecryptInit_ex(ctx, NULL, NULL, key, nonce) != 1 || !tag_param(ctx, (uint8_t *)tag, 1) ||
        (len > 0 && EVP_DecryptUpdate(ctx, body, &outl, body, (int)len) != 1) ||
        EVP_DecryptFinal_ex(ctx, body + outl, &fl) != 1 || (size_t)outl + (size_t)fl != len) {
        if (len > 0)
            OPENSSL_cleanse(body, len);
        return -EBADMSG;
    }
    return 0;
}

/* p: salt || plaintext (len bytes) || room for the tag. 0 or -EIO. Direction lock held. */
static int seal_in_place(struct gx_aead *a, struct direction *d, const uint8_t *subkey, uint8_t *p, size_t len) {
    uint8_t *body = p + a->salt_len;
    return body_seal(d->ctx, gcm_pairs(a), subkey, a->key_len, ZERO_NONCE, body, len, body + len);
}

/* p: salt || ciphertext || tag (dlen bytes, >= overhead). Plaintext left at p + salt_len.
 * 0 or -EBADMSG (no plaintext left). Direction lock held. */
static int open_in_place(struct gx_aead *a, struct direction *d, const uint8_t *subkey, uint8_t *p,
                         size_t dlen) {
    uint8_t *body = p + a->salt_len;
    size_t len = dlen - a->salt_len - GX_AEAD_TAG_LEN;
    return body_open(d->ctx, gcm_pairs(a), subkey, a->key_len, ZERO_NONCE, body, len, body + len);
}

/* One operation with the caller's key and nonce (gx_aead_seal_raw / gx_aead_open_raw). */
static int raw(int cipher, const uint8_t *key, size_t key_len, const uint8_t *nonce, size_t nonce_len, uint8_t *buf,
               size_t len, uint8_t *tag_out, const uint8_t *tag_in, size_t tag_len) {
    if (cipher <= GX_CIPHER_NONE || cipher >= NCIPHERS || key == NULL || nonce == NULL ||
        (tag_out == NULL && tag_in == NULL) || (len > 0 && buf == NULL) || len > (size_t)INT32_MAX)
        return -EINVAL;
    if (key_len != CIPHERS[cipher].key_len || nonce_len != sizeof(ZERO_NONCE) || tag_len != GX_AEAD_TAG_LEN)
        return -EINVAL;            /* sizes the packets never have: refused, not truncated or padded */
    EVP_CIPHER *evp = EVP_CIPHER_fetch(NULL, CIPHERS[cipher].evp_name, NULL);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int rc = evp == NULL ? -ENOSYS : ctx == NULL ? -ENOMEM : 0;
    if (rc == 0 && (tag_out != NULL ? EVP_EncryptInit_ex(ctx, evp, NULL, NULL, NULL)
                                    : EVP_DecryptInit_ex(ctx, evp, NULL, NULL, NULL)) != 1)
        rc = -EIO;
    if (rc == 0)
        rc = tag_out != NULL ? body_seal(ctx, gcm_own_for(cipher), key, key_len, nonce, buf, len, tag_out)
                             : body_open(ctx, gcm_own_for(cipher), key, key_len, nonce, buf, len, tag_in);
    EVP_CIPHER_CTX_free(ctx);
    EVP_CIPHER_free(evp);
    return rc;
}

int gx_aead_seal_raw(int cipher, const uint8_t *key, size_t key_len, const uint8_t *nonce, size_t nonce_len,
                     uint8_t *buf, size_t len, uint8_t *tag, size_t tag_len) {
    if (tag == NULL)
        return -EINVAL;
    return raw(cipher, key, key_len, nonce, nonce_len, buf, len, tag, NULL, tag_len);
}

int gx_aead_open_raw(int cipher, const uint8_t *key, size_t key_len, const uint8_t *nonce, size_t nonce_len,
                     uint8_t *buf, size_t len, const uint8_t *tag, size_t tag_len) {
    if (tag == NULL)
        return -EINVAL;
    return raw(cipher, key, key_len, nonce, nonce_len, buf, len, NULL, tag, tag_len);
}

/* Packets p[0], p[1] as seal_in_place, together. 0 or -EIO. */
static int seal_two(struct gx_aead *a, const uint8_t *const subkey[2], uint8_t *const p[2], const size_t len[2]) {
    uint8_t *body[2] = {p[0] + a->salt_len, p[1] + a->salt_len};
    uint8_t *tag[2] = {body[0] + len[0], body[1] + len[1]};
    return gx_gcm_seal2(subkey, a->key_len, ZERO_NONCE, body, len, tag) == 0 ? 0 : -EIO;
}

/* Packets p[0], p[1] (dlen[i] bytes) as open_in_place, together: a mask of the failed ones. */
static int open_two(struct gx_aead *a, const uint8_t *const subkey[2], uint8_t *const p[2], const size_t dlen[2]) {
    uint8_t *body[2] = {p[0] + a->salt_len, p[1] + a->salt_len};
    size_t len[2] = {dlen[0] - a->salt_len - GX_AEAD_TAG_LEN, dlen[1] - a->salt_len - GX_AEAD_TAG_LEN};
    const uint8_t *tag[2] = {body[0] + len[0], body[1] + len[1]};
    int rc = gx_gcm_open2(subkey, a->key_len, ZERO_NONCE, body, len, tag);
    return rc < 0 ? 3 : rc;
}

/* The subkeys of n (<= GX_HKDF_LANES) packets whose salts start at start[i] into d->subkey[i]. */
static void derive_group(struct gx_aead *a, struct direction *d, uint8_t *const start[], int n) {
    uint8_t *out[GX_HKDF_LANES];
    for (int i = 0; i < n; i++)
        out[i] = d->subkey[i];
    if (n > 0)
        gx_hkdf_derive(&a->hk, &d->hw, (const uint8_t *const *)start, out, n);
}

/* ---- batches ---------------------------------------------------------------------------------- */

/* Does packet i (len > 0) lie inside slot i with `front` bytes before it and `back` after it? */
static int in_slot(const struct gx_batch *b, uint32_t i, size_t front, size_t back) {
    uintptr_t lo = (uintptr_t)gx_batch_slot(b, i), hi = lo + b->slot_size;
    uintptr_t p = (uintptr_t)b->pkt[i].data;
    return p >= lo && p - lo >= front && p <= hi && b->pkt[i].len <= hi - p && back <= hi - p - b->pkt[i].len;
}

static int batch_ok(const struct gx_batch *b, size_t front, size_t back) {
    if (b == NULL || b->mem == NULL || b->cap > GX_BATCH_MAX || b->n > b->cap || b->slot_size > INT32_MAX)
        return 0;
    for (uint32_t i = 0; i < b->n; i++)
        if (b->pkt[i].len > 0 && !in_slot(b, i, front, back))
            return 0;
    return 1;
}

int gx_aead_seal_batch(struct gx_aead *a, struct gx_batch *b) {
    if (!batch_ok(b, a->salt_len, a->cipher == GX_CIPHER_NONE ? 0 : GX_AEAD_TAG_LEN))
        return -EINVAL;
    int sealed = 0;
    if (a->cipher == GX_CIPHER_NONE) {
        for (uint32_t i = 0; i < b->n; i++)
            sealed += b->pkt[i].len > 0;
        return sealed;
    }
    if (b->n == 0)
        return 0;
    pthread_mutex_lock(&a->seal.lock);
    int rc = 0;
    rc = make_salts(a, a->salts, b->n);
    uint32_t idx[GX_HKDF_LANES];
    uint8_t *start[GX_HKDF_LANES];
    int g = 0;
    for (uint32_t i = 0; rc == 0 && i <= b->n; i++) {
        if (i < b->n) {           /* gather a group of packets: salt in front */
            if (b->pkt[i].len == 0)
                continue;
            start[g] = b->pkt[i].data - a->salt_len;
            memcpy(start[g], a->salts + i * a->salt_len, a->salt_len);
            idx[g++] = i;
            if (g < GX_HKDF_LANES)
                continue;
        }
        derive_group(a, &a->seal, start, g);
        for (int q = 0; rc == 0 && q < g;) {
            int two = q + 1 < g && gcm_pairs(a);
            if (two) {
                const uint8_t *key2[2] = {a->seal.subkey[q], a->seal.subkey[q + 1]};
                size_t len2[2] = {b->pkt[idx[q]].len, b->pkt[idx[q + 1]].len};
                rc = seal_two(a, key2, start + q, len2);
            } else {
                rc = seal_in_place(a, &a->seal, a->seal.subkey[q], start[q], b->pkt[idx[q]].len);
            }
            for (int e = q + 1 + two; rc == 0 && q < e; q++) {
                struct gx_pkt *pk = &b->pkt[idx[q]];
                pk->data = start[q];
                pk->len += (uint32_t)gx_aead_overhead(a);
                sealed++;
            }
        }
        g = 0;
    }
    OPENSSL_cleanse(a->seal.subkey, sizeof(a->seal.subkey));
    pthread_mutex_unlock(&a->seal.lock);
    if (rc < 0)
        return rc;
    return sealed;             /* our salts need no filter entry: open recognises them */
}

int gx_aead_open_batch(struct gx_aead *a, struct gx_batch *b, struct gx_aead_drops *drops) {
    if (!batch_ok(b, 0, 0))
        return -EINVAL;
    int opened = 0;
    if (a->cipher == GX_CIPHER_NONE) {
        for (uint32_t i = 0; i < b->n; i++)
            opened += b->pkt[i].len > 0;
        return opened;
    }
    struct gx_aead_drops dr = {0, 0, 0};
    size_t over = gx_aead_overhead(a);
    /* todo[i]: packet i still to be opened (1) or just opened and not yet committed (2) */
    uint8_t todo[GX_BATCH_MAX];
    pthread_mutex_lock(&a->open.lock);
    for (uint32_t i = 0; i < b->n; i++) {
        todo[i] = 0;
        if (b->pkt[i].len == 0)
            continue;
        if (b->pkt[i].len < over) {
            b->pkt[i].len = 0;
            dr.short_pkt++;
            continue;
        }
        todo[i] = 1;
    }
    if (a->replay != NULL) {      /* our own salts reflected back, and known salts: spare the crypto */
        drop_own_salts(a, b, todo, &dr.replay);
        for (uint32_t i = 0; i < b->n; i++)
            if (todo[i])
                gx_replay_prefetch(a->replay, b->pkt[i].data);
        gx_replay_lock(a->replay);
        for (uint32_t i = 0; i < b->n; i++) {
            if (todo[i] && gx_replay_check(a->replay, b->pkt[i].data)) {
                todo[i] = 0;
                b->pkt[i].len = 0;
                dr.replay++;
            }
        }
        gx_replay_unlock(a->replay);
    }
    uint32_t idx[GX_HKDF_LANES];
    uint8_t *start[GX_HKDF_LANES];
    int g = 0;
    for (uint32_t i = 0; i <= b->n; i++) {
        if (i < b->n) {           /* gather a group of packets to open */
            if (todo[i] != 1)
                continue;
            start[g] = b->pkt[i].data;
            idx[g++] = i;
            if (g < GX_HKDF_LANES)
                continue;
        }
        derive_group(a, &a->open, start, g);
        for (int q = 0; q < g;) {
            int two = q + 1 < g && gcm_pairs(a), failed;
            if (two) {
                const uint8_t *key2[2] = {a->open.subkey[q], a->open.subkey[q + 1]};
                size_t dlen2[2] = {b->pkt[idx[q]].len, b->pkt[idx[q + 1]].len};
                failed = open_two(a, key2, start + q, dlen2);
            } else {
                failed = open_in_place(a, &a->open, a->open.subkey[q], start[q], b->pkt[idx[q]].len) == 0 ? 0 : 1;
            }
            for (int e = q + 1 + two, bit = 1; q < e; q++, bit <<= 1) {
                uint32_t k = idx[q];
                if (!(failed & bit)) {
                    todo[k] = 2;
                } else {
                    todo[k] = 0;
                    b->pkt[k].len = 0;
                    dr.auth++;
                }
            }
        }
        g = 0;
    }
    OPENSSL_cleanse(a->open.subkey, sizeof(a->open.subkey));
    /* commit: an authentic salt that is already there (a duplicate in this batch, or one a
     * concurrent seal just added) is a replay; forged packets never reach the filter */
    if (a->replay != NULL)
        gx_replay_lock(a->replay);
    for (uint32_t i = 0; i < b->n; i++) {
        if (todo[i] != 2)
            continue;
        if (a->replay != NULL && !gx_replay_add(a->replay, b->pkt[i].data)) {
            b->pkt[i].len = 0;
            dr.replay++;
            continue;
        }
        b->pkt[i].data += a->salt_len;
        b->pkt[i].len -= (uint32_t)over;
        opened++;
    }
    if (a->replay != NULL)
        gx_replay_unlock(a->replay);
    a->drops.short_pkt += dr.short_pkt;
    a->drops.auth += dr.auth;
    a->drops.replay += dr.replay;
    pthread_mutex_unlock(&a->open.lock);
    if (drops != NULL) {
        drops->short_pkt += dr.short_pkt;
        drops->auth += dr.auth;
        drops->replay += dr.replay;
    }
    return opened;
}

/* ---- single packets --------------------------------------------------------------------------- */

int gx_aead_seal_one(struct gx_aead *a, const uint8_t *salt, const uint8_t *in, size_t len, uint8_t *out) {
    size_t over = gx_aead_overhead(a);
    if (len > (size_t)INT32_MAX - over || (len > 0 && in == NULL) || (len + over > 0 && out == NULL))
        return -EINVAL;
    if (a->cipher == GX_CIPHER_NONE) {
        if (len > 0)
            memmove(out, in, len);
        return (int)len;
    }
    uint8_t s[GX_AEAD_MAX_SALT];
    pthread_mutex_lock(&a->seal.lock);
    int rc = 0;
    if (salt != NULL)
        memcpy(s, salt, a->salt_len);
    else
        rc = make_salts(a, s, 1);
    if (rc < 0) {
        pthread_mutex_unlock(&a->seal.lock);
        return rc;
    }
    if (len > 0)
        memmove(out + a->salt_len, in, len);
    memcpy(out, s, a->salt_len);
    derive_group(a, &a->seal, &out, 1);
    rc = seal_in_place(a, &a->seal, a->seal.subkey[0], out, len);
    OPENSSL_cleanse(a->seal.subkey, sizeof(a->seal.subkey));
    pthread_mutex_unlock(&a->seal.lock);
    if (rc < 0)
        return rc;
    if (salt != NULL && a->replay != NULL) {   /* a given salt is not recognisably ours: remember it */
        gx_replay_lock(a->replay);
        gx_replay_add(a->replay, s);
        gx_replay_unlock(a->replay);
    }
    return (int)(len + over);
}

int gx_aead_open_one(struct gx_aead *a, const uint8_t *in, size_t len, uint8_t *out) {
    size_t over = gx_aead_overhead(a);
    if (len > (size_t)INT32_MAX || (len > 0 && (in == NULL || out == NULL)))
        return -EINVAL;
    if (a->cipher == GX_CIPHER_NONE) {
        if (len > 0)
            memmove(out, in, len);
        return (int)len;
    }
    int rc = 0;
    pthread_mutex_lock(&a->open.lock);
    if (len < over) {
        a->drops.short_pkt++;
        rc = -EMSGSIZE;
    }
    if (rc == 0 && a->replay != NULL) {
        gx_replay_lock(a->replay);
        if (own_salt(a, in) || gx_replay_check(a->replay, in)) {
            a->drops.replay++;
            rc = -EALREADY;
        }
        gx_replay_unlock(a->replay);
    }
    if (rc == 0) {
        memmove(out, in, len);    /* open in out, so that `in` stays intact */
        derive_group(a, &a->open, &out, 1);
        rc = open_in_place(a, &a->open, a->open.subkey[0], out, len);
        OPENSSL_cleanse(a->open.subkey, sizeof(a->open.subkey));
        if (rc < 0) {
            a->drops.auth++;
        } else if (a->replay != NULL) {
            gx_replay_lock(a->replay);
            if (!gx_replay_add(a->replay, out)) {
                a->drops.replay++;
                rc = -EALREADY;
            }
            gx_replay_unlock(a->replay);
        }
        if (rc == 0)
            memmove(out, out + a->salt_len, len - over);
        else
            OPENSSL_cleanse(out, len);  /* no unauthentic bytes out */
    }
    pthread_mutex_unlock(&a->open.lock);
    return rc < 0 ? rc : (int)(len - over);
}
