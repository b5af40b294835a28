"""Writing the generated images as JPEG files: one encoding for every generator, serial or in worker processes.

Every generator makes its images (uint8 arrays, grey [H, W] or RGB [H, W, 3]) in its own process, in the order of
its random stream, and hands each to a ``JpegWriter`` with the file it goes to. With ``workers`` > 1 the encoding
and the file writes (most of the time at full counts: about 0.7 ms a file here) run in that many processes; the
bytes written are the same either way, so the files do not depend on ``workers``.
"""

from __future__ import annotations

import io
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

import numpy as np

QUALITY = 95
CHUNK = 256  # images per task handed to a worker


def encode_jpeg(array: np.ndarray) -> bytes:
    """An RGB JPEG (quality 95) of a uint8 image; a grey image is stored as RGB, as the real datasets' files are."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).convert("RGB").save(buf, format="JPEG", quality=QUALITY)
    return buf.getvalue()


def _write_chunk(items: list[tuple[str, np.ndarray]]) -> int:
    for path, array in items:
        Path(path).write_bytes(encode_jpeg(array))
    return len(items)


class JpegWriter:
    """``put(path, array)`` writes one image (parent folders made here), ``flush()`` waits for every file so far and
    raises the first worker error; as a context manager it flushes and ends its workers on exit. ``workers`` <= 1:
    each image is written at once, in this process (nothing to close)."""

    def __init__(self, workers: int = 1):
        self.workers = workers
        self._pool = ProcessPoolExecutor(workers) if workers > 1 else None
        self._chunk: list[tuple[str, np.ndarray]] = []
        self._pending: list[Future] = []
        self._dirs: set[Path] = set()
        self.written = 0

    def put(self, path: str | Path, array: np.ndarray) -> None:
        path = Path(path)
        if path.parent not in self._dirs:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._dirs.add(path.parent)
        if self._pool is None:
            self.written += _write_chunk([(str(path), array)])
            return
        self._chunk.append((str(path), array))
        if len(self._chunk) >= CHUNK:
            self._submit()

    def _submit(self) -> None:
        if self._chunk:
            self._pending.append(self._pool.submit(_write_chunk, self._chunk))
            self._chunk = []
        while len(self._pending) > 2 * self.workers:  # bounded: images wait in memory only a few chunks deep
            self.written += self._pending.pop(0).result()

    def flush(self) -> None:
        """Wait until every image put so far is on disk (a generator calls it before writing its label files)."""
        if self._pool is None:
            return
        self._submit()
        while self._pending:
            self.written += self._pending.pop(0).result()

    def close(self) -> None:
        if self._pool is None:
            return
        try:
            self.flush()
        finally:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def __enter__(self) -> JpegWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
