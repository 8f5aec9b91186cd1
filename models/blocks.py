"""The layer blocks every architecture table is built from.

Each block is the published definition of one building block (MobileNet's inverted residual, FBNet's
IRF block, MobileNeXt's sandglass, ResNet's basic and bottleneck blocks). Blocks know nothing of tables;
`models.builder` turns table rows into these.
"""
from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn

ACTIVATIONS = {
    "relu": lambda: nn.ReLU(inplace=True),
    "relu6": lambda: nn.ReLU6(inplace=True),
    "hswish": lambda: nn.Hardswish(inplace=True),
    "hsigmoid": lambda: nn.Hardsigmoid(inplace=True),
    None: lambda: nn.Identity(),
}


def make_divisible(value: float, divisor: int = 8) -> int:
    """TF / torchvision channel rounding: nearest multiple, never more than 10 % below `value`."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF "SAME" padding (before, after) for one spatial axis; asymmetric for stride 2 on even sizes."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class Norm:
    """BatchNorm settings of one net (eps and momentum differ between the TF and PyTorch references)."""

    def __init__(self, eps: float = 1e-5, momentum: float = 0.1):
        self.eps, self.momentum = eps, momentum

    def __call__(self, channels: int) -> nn.BatchNorm2d:
        return nn.BatchNorm2d(channels, eps=self.eps, momentum=self.momentum)


class ConvBNAct(nn.Sequential):
    """conv -> BN -> activation, with symmetric or TF-"SAME" padding computed for a known input size."""

    def __init__(self, cin, cout, kernel, stride, *, size, norm, act=None, groups=1, bias=False,
                 padding="symmetric"):
        layers: dict[str, nn.Module] = {}
        if padding == "same" and stride > 1:
            before, after = same_padding(size, kernel, stride)
            layers["pad"] = nn.ZeroPad2d((before, after, before, after))
            pad = 0
        else:
            pad = (kernel - 1) // 2
        layers["conv"] = nn.Conv2d(cin, cout, kernel, stride, pad, groups=groups, bias=bias)
        layers["bn"] = norm(cout)
        layers["act"] = ACTIVATIONS[act]()
        super().__init__(OrderedDict(layers))
        self.out_size = math.ceil(size / stride)


class SqueezeExcite(nn.Module):
    """MobileNetV3 SE: pool -> 1x1 (bias) -> ReLU -> 1x1 (bias) -> hard-sigmoid -> scale."""

    def __init__(self, channels: int, squeeze: int, gate: str = "hsigmoid"):
        super().__init__()
        self.reduce = nn.Conv2d(channels, squeeze, 1, bias=True)
        self.act = nn.ReLU(inplace=True)
        self.expand = nn.Conv2d(squeeze, channels, 1, bias=True)
        self.gate = ACTIVATIONS[gate]()

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.expand(self.act(self.reduce(s))))


class ChannelShuffle(nn.Module):
    """ShuffleNet channel shuffle (reshape C into (groups, C/groups), transpose, flatten)."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x):
        n, c, h, w = x.shape
        return x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class Residual(nn.Module):
    """A branch whose output is added to its input when shapes allow; `last_bn` is the branch's final BN."""

    def __init__(self, branch: dict, use_residual: bool, out_size: int, post_act=None):
        super().__init__()
        self.branch = nn.Sequential(OrderedDict(branch))
        self.use_residual = use_residual
        self.post_act = ACTIVATIONS[post_act]()
        self.out_size = out_size

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return [m for m in self.branch.modules() if isinstance(m, nn.BatchNorm2d)][-1]

    def forward(self, x):
        y = self.branch(x)
        return self.post_act(y + x if self.use_residual else y)


def inverted_residual(cin, cout, stride, *, size, norm, padding, k=3, e=None, mid=None, act="relu6",
                      se=None, bias=False, groups=1, shuffle=False):
    """MobileNetV2/V3, EfficientNet MBConv and FBNet IRF block.

    mid = explicit expanded width, or round(cin * e). The expand conv exists only when mid != cin.
    se = squeeze ratio of the expanded width (make_divisible to 8), placed after the depthwise activation.
    groups/shuffle = FBNet's `_g2` blocks: grouped pw/pwl convs, channel shuffle before the depthwise.
    """
    mid = mid if mid is not None else int(round(cin * e))
    layers: dict[str, nn.Module] = {}
    if mid != cin:
        layers["expand"] = ConvBNAct(cin, mid, 1, 1, size=size, norm=norm, act=act, groups=groups, bias=bias)
    if shuffle:
        layers["shuffle"] = ChannelShuffle(groups)
    dw = ConvBNAct(mid, mid, k, stride, size=size, norm=norm, act=act, groups=mid, bias=bias, padding=padding)
    layers["dw"] = dw
    if se:
        layers["se"] = SqueezeExcite(mid, make_divisible(mid * se, 8))
    layers["project"] = ConvBNAct(mid, cout, 1, 1, size=dw.out_size, norm=norm, groups=groups, bias=bias)
    return Residual(layers, stride == 1 and cin == cout, dw.out_size)


def depthwise_separable(cin, cout, stride, *, size, norm, padding, k=3, act="relu6"):
    """MobileNetV1: depthwise kxk (carries the stride) -> BN -> act, pointwise -> BN -> act."""
    dw = ConvBNAct(cin, cin, k, stride, size=size, norm=norm, act=act, groups=cin, padding=padding)
    pw = ConvBNAct(cin, cout, 1, 1, size=dw.out_size, norm=norm, act=act)
    return Residual({"dw": dw, "pw": pw}, False, dw.out_size)


def sandglass(cin, cout, stride, *, size, norm, padding, t, keep_3x3=False, act="relu6"):
    """MobileNeXt SGBlock (yitu-opensource mnext.py): four variants chosen as in the reference.

    t is a *reduction* ratio: hidden = cin // t, raised to make_divisible(ceil(cout / 6), 16) if smaller.
    """
    hidden = cin // t
    if hidden < cout / 6.0:
        hidden = make_divisible(math.ceil(cout / 6.0), 16)

    def dw(ch, s, a, sz):
        return ConvBNAct(ch, ch, 3, s, size=sz, norm=norm, act=a, groups=ch, padding=padding)

    pointwise = {"reduce": ConvBNAct(cin, hidden, 1, 1, size=size, norm=norm),
                 "expand": ConvBNAct(hidden, cout, 1, 1, size=size, norm=norm, act=act)}
    residual = False
    if t == 2:  # variant A: dw, pw, pw, dw carrying the stride
        layers = {"dw1": dw(cin, 1, act, size), **pointwise, "dw2": dw(cout, stride, None, size)}
    elif cin != cout and stride == 1 and not keep_3x3:  # variant B: no depthwise at all
        layers = pointwise
    elif cin != cout and stride == 2 and not keep_3x3:  # variant C: no leading depthwise
        layers = {**pointwise, "dw2": dw(cout, 2, None, size)}
    else:  # variant D: the full sandglass
        layers = {"dw1": dw(cin, 1, act, size), **pointwise, "dw2": dw(cout, stride, None, size)}
        residual = not keep_3x3 and cin == cout and stride == 1
    return Residual(layers, residual, math.ceil(size / stride))


def _shortcut(cin, cout, stride, size, norm):
    if stride == 1 and cin == cout:
        return None
    return ConvBNAct(cin, cout, 1, stride, size=size, norm=norm)


class ResNetBlock(Residual):
    """ResNet basic / bottleneck block (torchvision V1.5: the stride sits on the 3x3 conv)."""

    def __init__(self, branch, shortcut, out_size):
        super().__init__(branch, True, out_size, post_act="relu")
        self.shortcut = shortcut if shortcut is not None else nn.Identity()

    def forward(self, x):
        return self.post_act(self.branch(x) + self.shortcut(x))


def basic(cin, cout, stride, *, size, norm, padding):
    c1 = ConvBNAct(cin, cout, 3, stride, size=size, norm=norm, act="relu", padding=padding)
    c2 = ConvBNAct(cout, cout, 3, 1, size=c1.out_size, norm=norm)
    return ResNetBlock({"conv1": c1, "conv2": c2}, _shortcut(cin, cout, stride, size, norm), c1.out_size)


def bottleneck(cin, cout, stride, *, size, norm, padding, expansion=4):
    mid = cout // expansion
    c1 = ConvBNAct(cin, mid, 1, 1, size=size, norm=norm, act="relu")
    c2 = ConvBNAct(mid, mid, 3, stride, size=size, norm=norm, act="relu", padding=padding)
    c3 = ConvBNAct(mid, cout, 1, 1, size=c2.out_size, norm=norm)
    return ResNetBlock({"conv1": c1, "conv2": c2, "conv3": c3}, _shortcut(cin, cout, stride, size, norm),
                       c2.out_size)


class MaxPool(nn.MaxPool2d):
    def __init__(self, size, k=3, stride=2):
        super().__init__(k, stride, (k - 1) // 2)
        self.out_size = math.ceil(size / stride)


class Skip(nn.Identity):
    def __init__(self, size):
        super().__init__()
        self.out_size = size


class GlobalPool(nn.Module):
    """Global average pool to (N, C); exported as ReduceMean/GlobalAveragePool + Flatten."""

    def forward(self, x):
        return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
