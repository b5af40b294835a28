"""Networks.

The colored-MNIST networks follow the Learning-Not-to-Learn reference code (protocol sheet 2.3):
f (``ConvFeatures``) -> 14x14 feature map, g (``ConvClassifier``) -> class logits, and h (``ColorHeads``):
one small conv head per RGB channel predicting an 8-bin colour class at every 14x14 position.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import torch
from torch import nn


class Normalize(nn.Module):
    """Per-channel (x - mean) / std on inputs in [0, 1]; part of the model so every method sees raw pixels."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class ConvFeatures(nn.Module):
    """f: BN on the normalised input, conv5x5 + ReLU, max-pool 3x3/2, conv3x3 + ReLU -> width x 14 x 14."""

    def __init__(self, width: int, mean: Sequence[float], std: Sequence[float], in_channels: int = 3):
        super().__init__()
        self.net = nn.Sequential(
            Normalize(mean, std),
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, width, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(3, stride=2, padding=1),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(),
        )
        self.out_channels = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class GlobalAvgPool(nn.Module):
    """[B, C, H, W] -> [B, C] spatial mean. Unlike AdaptiveAvgPool2d, its CUDA backward is deterministic."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class ConvClassifier(nn.Module):
    """g: conv3x3/2 + ReLU, conv3x3 + ReLU, global average pool, linear -> logits."""

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        width = 2 * in_channels
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(),
            GlobalAvgPool(),
            nn.Linear(width, num_classes),
        )

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return self.net(feat)


class ColorHeads(nn.Module):
    """h: per input channel, conv3x3 + BN + ReLU + conv3x3 -> ``n_bins`` logits at every position.

    Output shape [B, n_bins, C, H, W], so that ``F.cross_entropy(out[:, :, c], target[:, c])`` is the
    per-channel bias loss of the reference code.
    """

    def __init__(self, in_channels: int, n_bins: int = 8, n_color_channels: int = 3):
        super().__init__()
        self.heads = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(in_channels, in_channels, 3, padding=1),
                nn.BatchNorm2d(in_channels),
                nn.ReLU(),
                nn.Conv2d(in_channels, n_bins, 3, padding=1),
            )
            for _ in range(n_color_channels)
        )

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return torch.stack([head(feat) for head in self.heads], dim=2)


class CategoricalBiasHead(nn.Module):
    """h for a categorical bias attribute (a place, a gender): linear on the features (spatially averaged if they
    are maps) -> [B, n_values, 1], one bias channel, so that the colour heads' per-channel loss reads it as is."""

    def __init__(self, in_features: int, n_values: int):
        super().__init__()
        self.linear = nn.Linear(in_features, n_values)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        if feat.dim() == 4:
            feat = feat.mean(dim=(2, 3))
        return self.linear(feat).unsqueeze(-1)


def he_init_(module: nn.Module) -> None:
    """The reference initialisation of f and g: conv weights N(0, 2 / (k*k*out)), BN weight 1, bias 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n))
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


@dataclass
class Backbone:
    """What an experiment hands a method: f, g and, for methods that need one, a factory for the bias head h."""

    features: nn.Module
    classifier: nn.Module
    make_bias_head: Callable[[], nn.Module] | None = None


def colored_mnist_backbone(width: int, num_classes: int, n_bins: int, mean, std) -> Backbone:
    f = ConvFeatures(width, mean, std)
    g = ConvClassifier(f.out_channels, num_classes)
    he_init_(f)
    he_init_(g)
    return Backbone(f, g, lambda: ColorHeads(f.out_channels, n_bins))


class SamePool(nn.Module):
    """TensorFlow's max-pool 3x3 / 2 with 'SAME' padding: the padding goes to the bottom/right first.

    Done by max_pool2d itself, without padding a copy of the input: the top/left padding (half the total, rounded
    down) as its symmetric ``padding``, and the one extra bottom/right row and column of an odd total as ``ceil_mode``
    (a last window that reaches past the input). Same windows, maxima and gradients as padding with -inf first
    (tests/test_reweighting.py), without the copy (7 % of a mini L2RW-grid step under cProfile; one job alone on an
    idle machine showed no difference, two quick starts with and without it hint at a few per cent)."""

    def __init__(self, size: int):
        super().__init__()
        out = -(-size // 2)
        total = max((out - 1) * 2 + 3 - size, 0)
        self.padding, self.ceil_mode = total // 2, bool(total % 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.max_pool2d(x, 3, 2, padding=self.padding, ceil_mode=self.ceil_mode)


class L2RWLeNetFeatures(nn.Module):
    """The learning-to-reweight LeNet's conv stack: 3 x (conv5x5 SAME, max-pool 3/2 SAME, then ReLU) -> 1024."""

    def __init__(self, in_channels: int = 1, width: int = 16, image_size: int = 28):
        super().__init__()
        layers, size, ch = [], image_size, in_channels
        for out_ch in (width, 2 * width, 4 * width):
            layers += [nn.Conv2d(ch, out_ch, 5, padding=2), SamePool(size), nn.ReLU()]
            size, ch = -(-size // 2), out_ch
        self.net = nn.Sequential(*layers, nn.Flatten())
        self.out_features = ch * size * size  # 64 * 4 * 4 = 1024

    def forward(self, x):
        return self.net(x)


def truncated_normal_init_(module: nn.Module, std: float = 0.1) -> None:
    """The official TensorFlow initialisation: weights truncated normal (within 2 std), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, 0.0, std, -2 * std, 2 * std)
            nn.init.zeros_(m.bias)


def l2rw_lenet_backbone(num_outputs: int = 1, in_channels: int = 1, width: int = 16, image_size: int = 28) -> Backbone:
    """The official L2RW LeNet (width 16: 16-32-64 channels): conv stack -> fc ->100 + ReLU -> fc 100->num_outputs
    (one logit: binary)."""
    f = L2RWLeNetFeatures(in_channels, width, image_size)
    g = nn.Sequential(nn.Linear(f.out_features, 100), nn.ReLU(), nn.Linear(100, num_outputs))
    truncated_normal_init_(f)
    truncated_normal_init_(g)
    return Backbone(f, g)


def resnet50_backbone(num_outputs: int, weights: str | os.PathLike | Mapping[str, torch.Tensor] | None) -> Backbone:
    """torchvision's ResNet-50, its fc replaced by a new Linear(2048, num_outputs): features = everything up to the
    pooled 2048-d vector. ``weights``: None (random initialisation), a state dict, or a weights file read by
    ``debias.data.pretrained.read_state_dict`` (its sha256 checked against its name, then
    ``torch.load(weights_only=True)``); never the network. The state dict's own ``fc`` (ImageNet's 1000 classes) is
    left out."""
    import torchvision

    from debias.data.pretrained import read_state_dict

    net = torchvision.models.resnet50()  # random initialisation, as torchvision does before it loads weights
    head = nn.Linear(net.fc.in_features, num_outputs)
    net.fc = nn.Identity()
    if weights is not None:
        state = weights if isinstance(weights, Mapping) else read_state_dict(weights)
        source = "the state dict" if isinstance(weights, Mapping) else f"weights file {weights}"
        _load_exactly(net, {k: v for k, v in state.items() if not k.startswith("fc.")}, source)
    return Backbone(net, head)


def _load_exactly(net: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """``net.load_state_dict(state)``, every key on both sides; a state dict of another network is refused naming
    ``source`` and (the first few of) the keys that differ."""
    from debias.errors import DataFormatError

    expected = f"{source}: expected a state dict of torchvision's {type(net).__name__}"
    try:
        result = net.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # a tensor of another shape
        raise DataFormatError(f"{expected}; {exc}") from None
    differ = [(what, keys) for what, keys in (("missing", result.missing_keys), ("unexpected", result.unexpected_keys))
              if keys]
    if differ:
        raise DataFormatError(f"{expected}; " + "; ".join(
            f"{len(keys)} key{'s' * (len(keys) > 1)} {what} ({', '.join(keys[:3])}{', ...' * (len(keys) > 3)})"
            for what, keys in differ))


def small_resnet_backbone(num_outputs: int, widths: Sequence[int] = (8, 16, 32)) -> Backbone:
    """A small ResNet from scratch (the mini stand-in for ResNet-50), built from torchvision's BasicBlock:
    conv3x3 stem, one BasicBlock per width (stride 2 from the second on), global average pool, linear head."""
    from torchvision.models.resnet import BasicBlock

    layers: list[nn.Module] = [nn.Conv2d(3, widths[0], 3, padding=1, bias=False), nn.BatchNorm2d(widths[0]),
                               nn.ReLU(inplace=True)]
    ch = widths[0]
    for i, w in enumerate(widths):
        stride = 1 if i == 0 else 2
        down = None
        if stride != 1 or ch != w:
            down = nn.Sequential(nn.Conv2d(ch, w, 1, stride=stride, bias=False), nn.BatchNorm2d(w))
        layers.append(BasicBlock(ch, w, stride=stride, downsample=down))
        ch = w
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return Backbone(nn.Sequential(*layers), nn.Linear(ch, num_outputs))
