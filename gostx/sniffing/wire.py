"""A bounds-checked reader over bytes for the sniffers: every read checks the length first."""

from __future__ import annotations


class Truncated(ValueError):
    """A length field points past the end of its enclosing structure."""


class Reader:
    __slots__ = ("_data", "_end", "_pos")

    def __init__(self, data: bytes | memoryview, start: int = 0, end: int | None = None) -> None:
        self._data = data
        self._pos = start
        self._end = len(data) if end is None else end

    @property
    def remaining(self) -> int:
        return self._end - self._pos

    @property
    def pos(self) -> int:
        return self._pos

    def take(self, n: int) -> bytes:
        if n < 0 or n > self.remaining:
            raise Truncated(f"want {n} bytes, have {self.remaining}")
        out = bytes(self._data[self._pos:self._pos + n])
        self._pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def u24(self) -> int:
        return int.from_bytes(self.take(3), "big")

    def u32(self) -> int:
        return int.from_bytes(self.take(4), "big")

    def vec8(self) -> bytes:
        return self.take(self.u8())

    def vec16(self) -> bytes:
        return self.take(self.u16())
