"""Device-side image augmentation for photo datasets stored as uint8 tensors (COCO gender, Waterbirds).

Images are decoded and resized once at prepare time into ``uint8 [N, 3, S, S]`` and kept whole on the device.
Per batch, on the device and without per-sample Python:

- training view: a random ``crop x crop`` window per image and a random horizontal flip per image, done as one
  gather with per-sample row / column indices, then ImageNet normalisation;
- evaluation view: the centre ``crop x crop`` window, then the same normalisation.

Outputs are float32 (the model's autocast decides the compute precision), channels_last where asked.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass

import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Pipeline:
    crop: int
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    channels_last: bool = False

    def normalize(self, x_uint8: torch.Tensor) -> torch.Tensor:
        mean, inv_std = _normalisation(self.mean, self.std, x_uint8.device)
        x = (x_uint8.float() - mean) * inv_std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x.contiguous()

    def train_view(self, x_uint8: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Random crop + random horizontal flip per image, normalised. ``generator`` lives on x's device."""
        b, _, h, w = x_uint8.shape
        dev = x_uint8.device
        top = torch.randint(0, h - self.crop + 1, (b,), device=dev, generator=generator)
        left = torch.randint(0, w - self.crop + 1, (b,), device=dev, generator=generator)
        flip = torch.rand(b, device=dev, generator=generator) < 0.5
        return self.normalize(crop_flip(x_uint8, top, left, flip, self.crop))

    def eval_view(self, x_uint8: torch.Tensor) -> torch.Tensor:
        _, _, h, w = x_uint8.shape
        top, left = (h - self.crop) // 2, (w - self.crop) // 2
        return self.normalize(x_uint8[:, :, top : top + self.crop, left : left + self.crop])


def crop_flip(x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, flip: torch.Tensor, crop: int) -> torch.Tensor:
    """``x[i, :, top_i : top_i + crop, left_i : left_i + crop]``, mirrored left-right where ``flip_i``; one gather."""
    b = x.shape[0]
    ar = torch.arange(crop, device=x.device)
    rows = top[:, None] + ar  # [B, crop]
    cols = torch.where(flip[:, None], left[:, None] + crop - 1 - ar, left[:, None] + ar)  # [B, crop]
    idx_b = torch.arange(b, device=x.device)[:, None, None]
    out = x.permute(0, 2, 3, 1)[idx_b, rows[:, :, None], cols[:, None, :]]  # [B, crop, crop, C]
    return out.permute(0, 3, 1, 2)


@functools.lru_cache(maxsize=None)
def _normalisation(mean: tuple[float, ...], std: tuple[float, ...], device: torch.device):
    """(255 mean, 1 / (255 std)) as [1, C, 1, 1] tensors on ``device``, made once per device: a host-to-device copy
    at every batch would make the host wait for the GPU at every step."""
    m = torch.tensor(mean).view(1, -1, 1, 1) * 255.0
    return m.to(device), (1.0 / (torch.tensor(std).view(1, -1, 1, 1) * 255.0)).to(device)


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on CUDA; a no-op elsewhere (CPU bf16 is slower than float32 for these convolutions)."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
