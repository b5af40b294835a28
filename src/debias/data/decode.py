"""Decoding a whole image dataset once, at prepare time, into one uint8 array.

The photo datasets (COCO gender, Waterbirds, FairFace) are decoded by a pool of threads straight into a
preallocated ``uint8 [N, *shape]`` array: each thread writes its image into its own row, so the memory of a
prepare job is that array plus one image per thread (no list of per-image arrays, no ``np.stack`` copy). The
caller turns it into a tensor with ``torch.from_numpy`` (no copy either).

This module must not import torch (the workflow imports the dataset modules while it builds the DAG).
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def decode_all(n: int, decode: Callable[[int], np.ndarray], shape: tuple[int, ...], threads: int = 4,
               progress: bool = True, desc: str = "decode", mininterval: float = 10) -> np.ndarray:
    """``decode(i)`` (a uint8 array of ``shape``) for i = 0..n−1, on ``threads`` threads, into one uint8 array
    ``[n, *shape]``. The first exception a ``decode`` raises (in order of i) stops it and is raised as it is."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    out = np.empty((n, *shape), np.uint8)

    def one(i: int) -> None:
        out[i] = decode(i)

    with ThreadPoolExecutor(max(1, threads)) as pool:
        for _ in tqdm(pool.map(one, range(n)), total=n, disable=not progress, mininterval=mininterval, desc=desc):
            pass
    return out
