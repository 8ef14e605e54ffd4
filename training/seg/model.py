"""A small U-Net for lung fields: the first blocks of ImageNet EfficientNet-Lite0 as the
encoder (strides 2..32) and a light decoder (one 3x3 conv per level).

The graph that ships takes ``image`` [N, 1, H, W] float32 (the engine's [0, 1] gray after
the card's mean/std, which are 0 and 1: the ImageNet normalisation happens inside the
graph) and returns ``mask`` [N, 1, H, W], the lung probability (sigmoid inside the graph).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Indices into training.recipes.models.efficientnet_lite0(...).layers whose outputs are the skips.
# Layer 0 is the stem (stride 2), 1 stride 2 (16 ch), 3 stride 4 (24), 5 stride 8 (40),
# 11 stride 16 (112), 13 stride 32 (192).
SKIPS = (1, 3, 5, 11)
LAST = 13
SKIP_CHANNELS = (16, 24, 40, 112)
DEEP_CHANNELS = 192


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class LungUNet(nn.Module):
    def __init__(self, pretrained: bool = True, decoder: tuple[int, ...] = (96, 64, 32)) -> None:
        """``decoder``: output channels per level from stride 16 up; 3 levels end at stride 4
        (the head's logits are then upsampled 4x), 4 levels at stride 2."""
        super().__init__()
        from training.recipes.models import efficientnet_lite0

        enc = efficientnet_lite0(1, pretrained=pretrained, dropout=0.0)
        self.encoder = nn.ModuleList(list(enc.layers)[: LAST + 1])
        self.decoder_channels = tuple(decoder)
        blocks = []
        cin = DEEP_CHANNELS
        if not 1 <= len(decoder) <= len(SKIPS):
            raise ValueError(f"decoder needs 1 to {len(SKIPS)} levels, got {decoder}")
        self.skips = SKIPS[len(SKIPS) - len(decoder):]
        for skip_c, cout in zip(reversed(SKIP_CHANNELS[len(SKIPS) - len(decoder):]), decoder, strict=True):
            blocks.append(_conv(cin + skip_c, cout))
            cin = cout
        self.decoder = nn.ModuleList(blocks)
        self.head = nn.Conv2d(cin, 1, 1)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def logits(self, image: torch.Tensor) -> torch.Tensor:
        """[N, 1, H, W] gray in [0, 1] -> [N, 1, H, W] lung logits (H, W multiples of 32)."""
        x = (image - self.mean) / self.std  # broadcast: 1 gray channel -> 3 normalised channels
        skips = []
        for i, layer in enumerate(self.encoder):
            x = layer(x)
            if i in self.skips:
                skips.append(x)
        for block, skip in zip(self.decoder, reversed(skips), strict=True):
            x = F.interpolate(x, size=skip.shape[2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], 1))
        x = self.head(x)
        return F.interpolate(x, size=image.shape[2:], mode="bilinear", align_corners=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(image))

    def freeze_encoder_bn(self) -> None:
        """Keep the ImageNet batch-norm statistics of the encoder (small batches on a CPU)."""
        for m in self.encoder.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
