"""Write arrays in the IDX format that MNIST ships in (and torchvision's MNIST reader reads).

IDX layout (LeCun's MNIST page): two zero bytes, a type byte (0x08 = unsigned byte), a byte with the
number of dimensions, each dimension as a big-endian int32, then the data in C order.
"""

from __future__ import annotations

import os
import struct

import numpy as np

from debias.io import atomic_path

_UBYTE = 0x08


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"{path}: IDX writer expects uint8 data, got {array.dtype}")
    header = struct.pack(">BBBB", 0, 0, _UBYTE, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(header)
            fh.write(np.ascontiguousarray(array).tobytes())
