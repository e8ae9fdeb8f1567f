# TLS + WebSocket transport streams in C (csrc/proxy/xstream.c, gx/proxy.h): OpenSSL's record layer and the
# WebSocket framing run on the shared relay engine's threads between a TCP socket and one end of a unix
# socketpair; Python keeps the other end (gostx/net/xstream.py).


XS_UP = 1
XS_HEAD = 2
XS_ENDED = 4
XS_FAILED = 8
XS_JOINED = 16
XS_RAW = 0
XS_WS_CLIENT = 1
XS_WS_SERVER = 2


cdef inline bytes _opt_path(object s):
    return None if not s else (<str>s).encode()


cdef class TlsContext:
    """An OpenSSL SSL_CTX for xstreams: built once per listener / dialer. ValueError(one-line reason) when
    a file cannot be loaded."""

    cdef gx_tls_ctx *ctx
    cdef readonly bint server

    def __cinit__(self, bint server, str cert_file=None, str key_file=None, str ca_file=None,
                  bint verify=False, bint default_paths=False, str alpn=None):
        cdef gx_tls_cfg cfg
        cdef char err[160]
        b_cert, b_key, b_ca, b_alpn = _opt_path(cert_file), _opt_path(key_file), _opt_path(ca_file), _opt_path(alpn)
        cfg.server = server
        cfg.cert_file = <const char *>b_cert if b_cert is not None else NULL
        cfg.key_file = <const char *>b_key if b_key is not None else NULL
        cfg.ca_file = <const char *>b_ca if b_ca is not None else NULL
        cfg.verify = verify
        cfg.default_paths = default_paths
        cfg.alpn = <const char *>b_alpn if b_alpn is not None else NULL
        err[0] = 0
        self.server = server
        rc = gx_tls_ctx_new(&self.ctx, &cfg, err, sizeof(err))
        if rc < 0:
            raise ValueError(err.decode(errors="replace") or strerror(-rc).decode())

    def __dealloc__(self):
        if self.ctx != NULL:
            gx_tls_ctx_free(self.ctx)
            self.ctx = NULL


import os as _xs_os


cdef class XStream:
    """One TLS / WebSocket stream between net_fd (a connected TCP socket) and app_fd (a socketpair end).
    Both fds belong to the stream from construction on (closed by the engine at the end). Not running
    until start()."""

    cdef gx_xs *x
    # the last values, kept by release() (self.x is NULL after it)
    cdef int _stage
    cdef int _status
    cdef str _reason
    cdef dict _stats

    def __cinit__(self, int net_fd, int app_fd, TlsContext tls=None, str server_name=None,
                  str verify_name=None, bint head=False, bytes raw=None):
        cdef gx_xs_cfg cfg
        b_sni, b_name = _opt_path(server_name), _opt_path(verify_name)
        cfg.tls = tls.ctx if tls is not None else NULL
        cfg.server_name = <const char *>b_sni if b_sni is not None else NULL
        cfg.verify_name = <const char *>b_name if b_name is not None else NULL
        cfg.head = head
        cfg.raw = <const uint8_t *>PyBytes_AS_STRING(raw) if raw else NULL
        cfg.raw_len = len(raw) if raw else 0
        _check(gx_xs_new(&self.x, net_fd, app_fd, &cfg))

    def __dealloc__(self):
        if self.x != NULL:
            with nogil:
                gx_xs_free(self.x)
            self.x = NULL

    def release(self) -> None:
        """Free the C stream once the engine let go of it (after stop()): its eventfds and whatever fds it
        still holds close now, not when the last reference to this object goes. stage, reason, status and
        stats keep their last values; the calls that act on the stream raise ConnectionError."""
        if self.x == NULL:
            return
        self._stage = gx_xs_stage(self.x)
        self._status = gx_xs_status(self.x)
        self._reason = self.reason
        self._stats = self.stats()
        with nogil:
            gx_xs_free(self.x)
        self.x = NULL

    cdef int _live(self) except -1:
        if self.x == NULL:
            raise ConnectionError("the stream has ended")
        return 0

    def start(self) -> None:
        self._live()
        _check(gx_xs_start(self.x))

    @property
    def event_fd(self) -> int:
        """An eventfd (the engine's done fd of the stream), readable at each stage change and once the
        engine let go (read 8 bytes to re-arm, then read stage)."""
        return gx_xs_event_fd(self.x) if self.x != NULL else -1

    @property
    def stage(self) -> int:
        """XS_UP | XS_HEAD | XS_ENDED | XS_FAILED bits."""
        return gx_xs_stage(self.x) if self.x != NULL else self._stage

    @property
    def reason(self) -> str:
        cdef char buf[160]
        if self.x == NULL:
            return self._reason
        gx_xs_reason(self.x, buf, sizeof(buf))
        return buf.decode(errors="replace")

    @property
    def status(self) -> int:
        return gx_xs_status(self.x) if self.x != NULL else self._status

    def ws_start(self, bytes raw=None, int mode=XS_RAW) -> None:
        """Head mode only, once: send raw unframed, then frame per mode (XS_RAW / XS_WS_CLIENT / _SERVER)."""
        cdef const uint8_t *p = <const uint8_t *>PyBytes_AS_STRING(raw) if raw else NULL
        self._live()
        _check(gx_xs_ws_start(self.x, p, len(raw) if raw else 0, mode))

    def join(self, int app_end, int peer_fd) -> None:
        """Once, after the head phase: peer_fd takes the app side's place, the relay runs in C alone;
        app_end is the caller's socketpair end. Both fds belong to the stream from now on."""
        if self.x == NULL:
            _xs_os.close(app_end)
            _xs_os.close(peer_fd)
            raise ConnectionError("the stream has ended")
        _check(gx_xs_join(self.x, app_end, peer_fd))

    def cancel(self) -> None:
        """Ask the engine to let go (never blocks): the stream ends, its fds are closed."""
        if self.x != NULL:
            gx_xs_cancel(self.x)

    def stop(self) -> int:
        """Cancel and wait until the engine let go (brief); the status."""
        cdef int rc
        if self.x == NULL:
            return self._status
        with nogil:
            rc = gx_xs_stop(self.x)
        return rc

    def stats(self) -> dict:
        cdef gx_xs_stats st
        if self.x == NULL:
            return dict(self._stats)
        gx_xs_get_stats(self.x, &st)
        return {"app_in": st.app_in, "app_out": st.app_out, "net_in": st.net_in, "net_out": st.net_out,
                "frames_in": st.frames_in, "frames_out": st.frames_out, "pings": st.pings,
                "pings_coalesced": st.pings_coalesced, "ws_errors": st.ws_errors,
                "tls_failures": st.tls_failures, "joined": st.joined}
