"""Capture the first bytes a real client sends: a one-shot TCP server on loopback records what
arrives until a predicate says it has enough (or the client stops), then answers and closes.

    with FirstBytesServer(enough=lambda b: b"\\r\\n\\r\\n" in b) as server:
        subprocess.run(["curl", f"http://127.0.0.1:{server.port}/"], ...)
    data = server.captured()

Used by the sniffing tests to get ClientHellos from openssl/curl/Python and requests from curl.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from types import TracebackType


class FirstBytesServer:
    def __init__(self, enough: Callable[[bytes], bool], reply: bytes = b"", timeout: float = 5.0,
                 host: str = "127.0.0.1") -> None:
        self._enough = enough
        self._reply = reply
        self._timeout = timeout
        self._listener = socket.create_server((host, 0))
        self._listener.settimeout(timeout)
        self.port: int = self._listener.getsockname()[1]
        self._data = bytearray()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="first-bytes", daemon=True)

    def __enter__(self) -> FirstBytesServer:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._listener.close()
        self._thread.join(self._timeout + 1)

    def captured(self, wait: float | None = None) -> bytes:
        """The bytes received (waits for the capture to finish, at most `wait` or the timeout)."""
        self._done.wait(self._timeout if wait is None else wait)
        return bytes(self._data)

    def _serve(self) -> None:
        try:
            conn, _ = self._listener.accept()
        except OSError:
            self._done.set()
            return
        with conn:
            conn.settimeout(self._timeout)
            try:
                while not self._enough(bytes(self._data)):
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    self._data += chunk
                if self._reply:
                    conn.sendall(self._reply)
            except OSError:
                pass
            finally:
                self._done.set()
