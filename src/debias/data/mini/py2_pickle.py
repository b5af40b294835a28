"""Pickles as Python 2 wrote them, the form of Wang et al.'s COCO split files (read with latin1 encoding).

Python 2 pickled its ``str`` as byte strings (opcode SHORT_BINSTRING, latin-1 bytes), which Python 3 unpickles
only with an ``encoding``; a Python 3 pickle of the same data would not exercise that path of the reader.
"""

from __future__ import annotations

import io
import os
import pickle
import struct


class Py2Pickler(pickle._Pickler):
    """Writes str as Python 2 wrote its byte strings (opcode SHORT_BINSTRING, latin-1 bytes; up to 255 bytes)."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj):
        raw = obj.encode("latin1")
        if len(raw) > 255:
            raise ValueError(f"string of {len(raw)} bytes {obj[:40]!r}...: SHORT_BINSTRING holds at most 255")
        self.write(pickle.SHORT_BINSTRING + struct.pack("<B", len(raw)) + raw)
        self.memoize(obj)

    dispatch[str] = save_py2_str


def py2_dumps(obj) -> bytes:
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def py2_dump(obj, path: str | os.PathLike) -> None:
    """Write ``obj`` to ``path`` (atomically) as a Python 2 pickle, protocol 2."""
    from debias.io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_bytes(py2_dumps(obj))
