# Shadowsocks AEAD UDP packet framing (csrc/crypto/aead.c, csrc/crypto/replay.c): the Aead class and the cipher
# names. seal_many/open_many run whole batches through the C batch path with the GIL released;
# the tunnel passes Aead.ptr (a gx_aead *) straight to C.

AEAD_REPLAY_DEFAULT = GX_AEAD_REPLAY_DEFAULT
_GCM_IMPLS = {1: "openssl", 2: "vaes-avx512", 3: "vaes-avx2"}
_HKDF_IMPLS = {1: "openssl", 2: "avx512", 3: "sha-ni"}
cdef long long _AEAD_REPLAY_MAX = 100_000_000   # salts; about 1 GB of filter


def crypto_impls():
    """The per-packet crypto code this CPU runs: {"aes-gcm": "vaes-avx512" | "vaes-avx2" | "openssl",
    "hkdf-sha1": "avx512" | "sha-ni" | "openssl"} (GX_CRYPTO=openssl in the environment, any case, forces
    OpenSSL for both; so does an extension built with GX_NO_SIMD=1). ChaCha20-Poly1305 and AES-192-GCM
    always use OpenSSL. "simd": whether our SIMD code is in this build at all."""
    return {"aes-gcm": _GCM_IMPLS.get(gx_gcm_impl(), "unknown"),
            "hkdf-sha1": _HKDF_IMPLS.get(gx_hkdf_impl(), "unknown"), "simd": bool(gx_crypto_simd())}


def supported_ciphers():
    """Every cipher name `method` accepts (matching is case-insensitive)."""
    return (<bytes>gx_aead_supported()).decode().split(", ")


cdef int _lookup_cipher(object name) except -1:
    if not isinstance(name, str):
        raise TypeError(f"cipher name must be str, not {type(name).__name__}")
    cdef bytes raw = (<str>name).encode("utf-8", "replace")
    cdef int cipher = gx_aead_lookup(raw) if b"\0" not in raw else -1
    if cipher < 0:
        raise ValueError(f"unknown cipher {name!r}: supported are {(<bytes>gx_aead_supported()).decode()}")
    return cipher


def canonical_cipher(name):
    """The canonical lower-case name of a cipher name or alias ('AEAD_AES_128_GCM' -> 'aes-128-gcm',
    'dummy' -> 'none'). ValueError (one line, with the supported names) if unknown."""
    return (<bytes>gx_aead_name(_lookup_cipher(name))).decode()


cdef bytes _as_bytes(object value, str what):
    if isinstance(value, bytes):
        return <bytes>value
    if isinstance(value, str):
        return (<str>value).encode("utf-8")
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{what} must be bytes or str, not {type(value).__name__}")


def derive_key(method, password):
    """EVP_BytesToKey(MD5) of the password, as long as the cipher's key (b'' for none)."""
    cdef int cipher = _lookup_cipher(method)
    cdef bytes pw = _as_bytes(password, "password")
    cdef uint8_t key[GX_AEAD_MAX_KEY]
    cdef int rc = gx_aead_derive_key(cipher, <const uint8_t *>PyBytes_AS_STRING(pw), PyBytes_GET_SIZE(pw), key)
    out = PyBytes_FromStringAndSize(<char *>key, gx_aead_key_len(cipher)) if rc == 0 else None
    OPENSSL_cleanse(key, sizeof(key))
    _check(rc)
    return out


cdef list _packet_list(object packets, str what):
    cdef list out = []
    for p in packets:
        out.append(p if isinstance(p, bytes) else _as_bytes(p, what))
    return out


cdef class Aead:
    """One Shadowsocks-AEAD key: seal and open UDP datagrams (salt || AEAD(packet) || tag).

    Aead(method, password=None, key=None, *, replay_capacity=AEAD_REPLAY_DEFAULT): the key is
    `key` (raw, exactly key_len bytes) if given, else EVP_BytesToKey(password). The object keeps
    a replay filter of the salts it opened and refuses its own salts sent back to it
    (replay_capacity <= 0 turns both off), so keep one Aead per key. Thread-safe; seal_many/open_many
    release the GIL.
    """

    cdef gx_aead *ptr            # for the tunnel binding: pass to the C data plane
    cdef readonly str method     # canonical cipher name
    cdef readonly int key_len
    cdef readonly int salt_len
    cdef readonly int overhead

    def __cinit__(self, method, password=None, key=None, *, replay_capacity=GX_AEAD_REPLAY_DEFAULT):
        self.ptr = NULL
        cdef int cipher = _lookup_cipher(method)
        cdef int key_len = gx_aead_key_len(cipher)
        cdef uint8_t derived[GX_AEAD_MAX_KEY]
        cdef bytes raw
        cdef const uint8_t *kp = NULL
        cdef long long cap = replay_capacity
        cdef gx_aead *a = NULL
        cdef int rc = 0
        if cipher != GX_CIPHER_NONE:
            if key is not None:
                raw = _as_bytes(key, "key")
                if len(raw) != key_len:
                    raise ValueError(f"{canonical_cipher(method)} needs a key of {key_len} bytes, got {len(raw)}")
                kp = <const uint8_t *>PyBytes_AS_STRING(raw)
            elif password is not None:
                raw = _as_bytes(password, "password")
                rc = gx_aead_derive_key(cipher, <const uint8_t *>PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw),
                                        derived)
                kp = derived
            else:
                raise ValueError(f"{canonical_cipher(method)} needs a password or a key")
        if rc == 0 and cap <= _AEAD_REPLAY_MAX:
            rc = gx_aead_new_ex(&a, cipher, kp, <size_t>cap if cap > 0 else 0)
        OPENSSL_cleanse(derived, sizeof(derived))   # the master key: the gx_aead keeps its own copy
        if cap > _AEAD_REPLAY_MAX:
            raise ValueError(f"replay_capacity {cap} is too large (at most {_AEAD_REPLAY_MAX} salts)")
        _check(rc)
        self.ptr = a
        self.method = (<bytes>gx_aead_name(cipher)).decode()
        self.key_len = key_len
        self.salt_len = <int>gx_aead_salt_len(a)
        self.overhead = <int>gx_aead_overhead(a)

    def __dealloc__(self):
        gx_aead_free(self.ptr)
        self.ptr = NULL

    def __repr__(self):
        return f"Aead({self.method!r})"

    @property
    def drops(self):
        """Datagrams open/open_many dropped so far: {'short_pkt': n, 'auth': n, 'replay': n}."""
        cdef gx_aead_drops d
        gx_aead_drops_total(self.ptr, &d)
        return {"short_pkt": d.short_pkt, "auth": d.auth, "replay": d.replay}

    def seal(self, plaintext, salt=None):
        """salt || AEAD(plaintext) || tag, with a fresh random salt unless one is given."""
        cdef bytes pt = _as_bytes(plaintext, "plaintext")
        cdef bytes s
        cdef const uint8_t *sp = NULL
        if salt is not None:
            s = _as_bytes(salt, "salt")
            if len(s) != self.salt_len or self.salt_len == 0:
                raise ValueError(f"{self.method} takes a salt of {self.salt_len} bytes, got {len(s)}")
            sp = <const uint8_t *>PyBytes_AS_STRING(s)
        cdef Py_ssize_t n = PyBytes_GET_SIZE(pt)
        cdef bytes out = PyBytes_FromStringAndSize(NULL, n + self.overhead)
        cdef int rc = gx_aead_seal_one(self.ptr, sp, <const uint8_t *>PyBytes_AS_STRING(pt), n,
                                       <uint8_t *>PyBytes_AS_STRING(out))
        _check(rc)
        return out

    def open(self, datagram):
        """The plaintext of a datagram; ValueError if it is short, forged (or the key is wrong), or
        a replay."""
        cdef bytes dg = _as_bytes(datagram, "datagram")
        cdef Py_ssize_t n = PyBytes_GET_SIZE(dg)
        cdef bytes out = PyBytes_FromStringAndSize(NULL, n)
        cdef int rc = gx_aead_open_one(self.ptr, <const uint8_t *>PyBytes_AS_STRING(dg), n,
                                       <uint8_t *>PyBytes_AS_STRING(out))
        if rc == -EMSGSIZE:
            raise ValueError(f"short datagram: {n} bytes, {self.method} needs at least {self.overhead}")
        if rc == -EBADMSG:
            raise ValueError(f"datagram failed authentication ({self.method}): forged, corrupt or wrong key")
        if rc == -EALREADY:
            raise ValueError("replayed datagram: its salt was seen before")
        _check(rc)
        return out[:rc]

    def seal_many(self, packets):
        """seal() for a list of packets, through the C batch path (GIL released per batch). An empty
        packet is sealed on its own (the batch path takes len 0 for "no packet")."""
        return self._run_many(_packet_list(packets, "packet"), True)

    def open_many(self, datagrams):
        """open() for a list of datagrams, through the C batch path; None where a datagram was
        dropped (short, forged or replayed; counted in drops). An empty datagram gives None
        without being counted (the batch path takes len 0 for "no packet")."""
        return self._run_many(_packet_list(datagrams, "datagram"), False)

    cdef list _run_many(self, list items, bint seal):
        cdef Py_ssize_t total = len(items), start, i, longest = 0
        cdef uint32_t k, m
        cdef int rc = 0
        cdef list result = []
        for p in items:
            longest = max(longest, PyBytes_GET_SIZE(<bytes>p))
        # a slot fits the longest packet with the headroom in front and the tailroom behind
        cdef Py_ssize_t slot = ((longest + GX_HEADROOM + GX_TAILROOM + 63) // 64) * 64
        if slot > 0x7fffffff:
            raise ValueError("packet too large")
        slot = max(slot, <Py_ssize_t>GX_SLOT_SIZE)
        cdef gx_batch *b = <gx_batch *>PyMem_Malloc(sizeof(gx_batch))
        if b == NULL:
            raise MemoryError()
        cdef uint32_t cap = <uint32_t>min(max(total, 1), <Py_ssize_t>GX_BATCH_MAX)
        rc = gx_batch_init(b, cap, <uint32_t>slot, GX_HEADROOM)
        if rc < 0:
            PyMem_Free(b)
            _check(rc)
        cdef const char *src[GX_BATCH_MAX]
        cdef uint32_t lens[GX_BATCH_MAX]
        cdef uint8_t *start_of[GX_BATCH_MAX]
        try:
            start = 0
            while start < total:
                m = <uint32_t>min(total - start, <Py_ssize_t>cap)
                for k in range(m):
                    src[k] = PyBytes_AS_STRING(<bytes>items[start + k])
                    lens[k] = <uint32_t>PyBytes_GET_SIZE(<bytes>items[start + k])
                with nogil:
                    gx_batch_reset(b)
                    b.n = m
                    for k in range(m):
                        memcpy(b.pkt[k].data, src[k], lens[k])
                        b.pkt[k].len = lens[k]
                        start_of[k] = b.pkt[k].data
                    if seal:
                        rc = gx_aead_seal_batch(self.ptr, b)
                    else:
                        rc = gx_aead_open_batch(self.ptr, b, NULL)
                _check(rc)
                for k in range(m):
                    if seal and lens[k] == 0 and self.overhead > 0:
                        result.append(self.seal(b""))   # the batch path skips len 0
                        continue
                    # opened (or plaintext "none"): data moved by salt_len; dropped: data unchanged
                    if not seal and b.pkt[k].len == 0 and (lens[k] == 0 or (
                            self.salt_len > 0 and b.pkt[k].data == start_of[k])):
                        result.append(None)
                    else:
                        result.append(PyBytes_FromStringAndSize(<char *>b.pkt[k].data, b.pkt[k].len))
                start += m
        finally:
            gx_batch_free(b)
            PyMem_Free(b)
        return result
