"""A stand-in for torchvision's ImageNet ResNet-50 file: the state dict of a randomly initialised
``torchvision.models.resnet50()`` (its 1000-class ``fc`` included, as torchvision publishes it), named as a weights
file of ``pretrained.root`` is (``debias.data.pretrained``): ``resnet50-<first 8 hex digits of its sha256>.pth``.

Set ``<experiment>.model.weights`` to the returned name for a run to start from it (the stand-ins' roots.yaml does).
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

ARCH = "resnet50"


def write_resnet50_weights(folder: str | Path, seed: int = 0) -> Path:
    """Write the file into ``folder`` (atomically); return its path."""
    import torch
    import torchvision

    from debias.data.pretrained import sha256_prefix
    from debias.io import atomic_path

    torch.manual_seed(seed)
    buf = io.BytesIO()
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), buf)
    data = buf.getvalue()
    path = Path(folder) / f"{ARCH}-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    sha256_prefix(path.name)  # the name is one the pipeline accepts
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path
