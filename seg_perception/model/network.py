"""The compact FCN: a factorised depthwise encoder-decoder with a pooled context module.

Layout (strides): 2 -> 4 (skip) -> 8 (skip) -> 16 (dilated context) -> decoder back to 4 ->
bilinear to the input size. Cheap stages at high resolution, the width where the pixels are few.
Torch is only imported by training, export and the torch backend, never by the node's default path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ARCH_NAME = "seglite"


class ConvBNAct(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1,
                 dilation: int = 1, act: bool = True) -> None:
        pad = dilation * (k // 2)
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, k, stride, pad, dilation=dilation, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class Downsample(nn.Module):
    """ENet-style: a strided conv's features concatenated with max-pooled input."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout - cin, 3, 2, 1, bias=False)
        self.pool = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(torch.cat([self.conv(x), self.pool(x)], 1)), inplace=True)


class DSBlock(nn.Module):
    """Residual block of two depthwise-separable convs; the second is dilated for context."""

    def __init__(self, c: int, dilation: int = 1, drop: float = 0.0) -> None:
        super().__init__()
        self.dw1 = ConvBNAct(c, c, 3, groups=c, act=False)
        self.pw1 = ConvBNAct(c, c, 1)
        self.dw2 = ConvBNAct(c, c, 3, groups=c, dilation=dilation, act=False)
        self.pw2 = ConvBNAct(c, c, 1, act=False)
        self.drop = nn.Dropout2d(drop) if drop > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pw2(self.dw2(self.pw1(self.dw1(x))))
        return F.relu(x + self.drop(y), inplace=True)


class Context(nn.Module):
    """Global and local average-pool branches plus squeeze-excitation channel attention.

    Fixed-kernel pools and a global mean (not adaptive bins) keep the graph exportable at any
    input size for ONNX Runtime and TensorRT.
    """

    def __init__(self, c: int) -> None:
        super().__init__()
        branch = c // 4
        self.glob = ConvBNAct(c, branch, 1)
        self.local = ConvBNAct(c, branch, 1)
        self.fuse = ConvBNAct(c + 2 * branch, c, 1)
        self.att = nn.Sequential(nn.Conv2d(c, c // 4, 1), nn.ReLU(inplace=True),
                                 nn.Conv2d(c // 4, c, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.glob(x.mean((2, 3), keepdim=True)).expand(-1, -1, x.shape[2], x.shape[3])
        loc = self.local(F.avg_pool2d(x, 7, 1, 3, count_include_pad=False))
        y = self.fuse(torch.cat([x, g, loc], 1))
        return y * self.att(y.mean((2, 3), keepdim=True))


class SegLite(nn.Module):
    """Returns logits at 1/4 resolution (the deployed graph, ``model.deploy``, upsamples them)."""

    def __init__(self, num_classes: int, widths: tuple[int, int, int, int] = (16, 32, 64, 128),
                 depth16: int = 8, drop: float = 0.05) -> None:
        super().__init__()
        c1, c4, c8, c16 = widths
        self.stem = ConvBNAct(3, c1, 3, 2)
        self.down4 = Downsample(c1, c4)
        self.stage4 = nn.Sequential(DSBlock(c4), DSBlock(c4))
        self.down8 = Downsample(c4, c8)
        self.stage8 = nn.Sequential(DSBlock(c8), DSBlock(c8, 2), DSBlock(c8))
        self.down16 = Downsample(c8, c16)
        dil = (1, 2, 4, 8)
        self.stage16 = nn.Sequential(*(DSBlock(c16, dil[i % 4], drop) for i in range(depth16)))
        self.context = Context(c16)
        self.dec8_in = ConvBNAct(c16, c8, 1)
        self.dec8 = DSBlock(c8)
        self.dec4_in = ConvBNAct(c8, c4, 1)
        self.dec4 = DSBlock(c4)
        self.head = nn.Sequential(nn.Dropout2d(0.1), nn.Conv2d(c4, num_classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s4 = self.stage4(self.down4(self.stem(x)))
        s8 = self.stage8(self.down8(s4))
        y = self.context(self.stage16(self.down16(s8)))
        y = F.interpolate(self.dec8_in(y), size=s8.shape[-2:], mode="bilinear", align_corners=False)
        y = self.dec8(y + s8)
        y = F.interpolate(self.dec4_in(y), size=s4.shape[-2:], mode="bilinear", align_corners=False)
        y = self.dec4(y + s4)
        return self.head(y)


def build_model(arch: str, num_classes: int, **kwargs: object) -> nn.Module:
    if arch != ARCH_NAME:
        raise ValueError(f"unknown architecture {arch!r}; known: {ARCH_NAME}")
    # why the ignore below: arch_kwargs from checkpoint metadata, checked by SegLite itself
    return SegLite(num_classes, **kwargs)  # type: ignore[arg-type]


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, height: int, width: int) -> int:
    """Multiply-accumulates of conv layers for one frame (hooks; BN and resizes not counted)."""
    total = 0

    def hook(mod: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(mod, nn.Conv2d)
        k = mod.kernel_size[0] * mod.kernel_size[1] * (mod.in_channels // mod.groups)
        total += int(out.numel() // out.shape[0]) * k

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    was = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, height, width))
    model.train(was)
    for h in hs:
        h.remove()
    return total


class Normalized(nn.Module):
    """Normalisation baked into the network, so every backend feeds raw 0..255 pixels."""

    mean: torch.Tensor  # buffers, registered below
    std: torch.Tensor

    def __init__(self, net: nn.Module, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: float NCHW RGB in 0..255; returns logits at 1/4 resolution."""
        return self.net((x - self.mean) / self.std)


def model_from_meta(meta: dict) -> Normalized:
    net = build_model(meta["arch"], len(meta["classes"]["names"]), **meta.get("arch_kwargs", {}))
    return Normalized(net, meta["mean"], meta["std"])
