"""Early writeback: ask the kernel to start writing a file's pages while the file is still being
written, so that the ``fsync`` before ``os.replace`` (what makes a cache blob or an installed
binary crash-safe) finds little left to flush.

Linux only (``sync_file_range(SYNC_FILE_RANGE_WRITE)``: starts the I/O, does not wait for it and
gives no durability by itself); elsewhere, or when the call is unavailable, a no-op.  The fsync
stays where it was: this only moves its work earlier, in parallel with the download or the
decompression.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from typing import IO

STEP = 8 << 20  # start writing back every 8 MiB written
_WRITE = 2  # SYNC_FILE_RANGE_WRITE
_UNSET: object = object()
_fn: Callable[[int, int, int, int], int] | None | object = _UNSET


def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    global _fn
    if _fn is _UNSET:
        _fn = None
        if sys.platform.startswith("linux"):
            try:
                import ctypes

                f = ctypes.CDLL(None, use_errno=True).sync_file_range
                f.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
                f.restype = ctypes.c_int
                _fn = f
            except (OSError, AttributeError):
                _fn = None
    return _fn  # type: ignore[return-value]


class Writeback:
    """Follows one file being written sequentially from *start*; :meth:`wrote` after each write."""

    def __init__(self, f: IO[bytes], start: int = 0, *, enabled: bool = True) -> None:
        self.f = f
        self.fn = _sync_file_range() if enabled else None
        self.pos = self.done = start

    def wrote(self, n: int) -> None:
        self.pos += n
        if self.fn is not None and self.pos - self.done >= STEP:
            self.f.flush()
            self.fn(self.f.fileno(), self.done, self.pos - self.done, _WRITE)  # errors ignored: a hint
            self.done = self.pos

    def finish(self) -> None:
        """Start the writeback of what is left (the file is complete)."""
        if self.fn is not None and self.pos > self.done:
            self.f.flush()
            self.fn(self.f.fileno(), self.done, self.pos - self.done, _WRITE)
            self.done = self.pos
