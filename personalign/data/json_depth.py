"""Bounded-memory JSON: refuse deep nesting before any parser buffers it.

ijson keeps a prefix string per nesting level for every event of a buffer, so 80 KB of ``[`` cost it
3.95 GB. ``DepthCheckedReader`` wraps a binary file and scans each chunk's bracket depth (brackets
inside strings are text) before handing the chunk on: a parser reading through it never sees more
than ``MAX_DEPTH`` levels, and memory stays bounded by the chunk size whatever the file holds.
"""

from __future__ import annotations

import re
from typing import IO

MAX_DEPTH = 32  # LaMP records nest 4 deep; anything far deeper is broken or hostile input
_STRUCTURE = re.compile(rb'["\\\[\]{}]')


class NestingError(ValueError):
    """JSON nested deeper than ``MAX_DEPTH``, found by ``DepthCheckedReader`` before any parser saw it."""


class DepthCheckedReader:
    """A binary file wrapper that checks each chunk's bracket depth before returning it."""

    def __init__(self, handle: IO[bytes], limit: int = MAX_DEPTH):
        self.handle, self.limit = handle, limit
        self.depth, self.in_string, self.escaped_at = 0, False, -1
        self.offset = handle.tell() if handle.seekable() else 0

    def read(self, size: int = -1) -> bytes:
        chunk = self.handle.read(size)
        for match in _STRUCTURE.finditer(chunk):
            at = self.offset + match.start()
            char = match.group()
            if self.in_string:
                if at == self.escaped_at:
                    continue
                if char == b"\\":
                    self.escaped_at = at + 1
                elif char == b'"':
                    self.in_string = False
            elif char == b'"':
                self.in_string = True
            elif char in b"[{":
                self.depth += 1
                if self.depth > self.limit:
                    raise NestingError(f"JSON nested deeper than {self.limit} levels (at byte {at})")
            elif char in b"]}":
                self.depth -= 1
        self.offset += len(chunk)
        return chunk
