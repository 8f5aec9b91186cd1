"""Architecture-as-data: one builder turns a table of rows into a PyTorch network.

Row grammar (after mobile_cv's FBNet builder): ``(op, out_channels, stride, repeats, {kwargs})``.
The stride applies to the first of the `repeats` blocks; the others have stride 1 and in == out.

  op            block                                   kwargs
  ``conv``      conv -> BN -> act                       k, act, bias
  ``maxpool``   3x3 / 2 max pool (ResNet stem)          -
  ``skip``      identity (FBNet's "skip" rows)          -
  ``dwsep``     MobileNetV1 depthwise-separable         k, act
  ``ir``        inverted residual / MBConv / IRF        k, e or mid, act, se, bias, groups, shuffle
  ``sg``        MobileNeXt sandglass                    t, keep_3x3, act
  ``basic``     ResNet basic block                      -
  ``bottleneck`` ResNet bottleneck (out = 4 x mid)      -

Head rows: ``("pool",)`` global average, ``("fc", out, {act, bias})`` a hidden linear layer,
``("dropout", p)``, ``("classifier",)`` the final linear layer with `num_classes` outputs.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace

from torch import nn

from models import blocks

BLOCKS = {
    "conv": lambda cin, cout, s, *, size, norm, padding, k=3, act=None, bias=False: blocks.ConvBNAct(
        cin, cout, k, s, size=size, norm=norm, act=act, bias=bias, padding=padding),
    "maxpool": lambda cin, cout, s, *, size, norm, padding: blocks.MaxPool(size, stride=s),
    "skip": lambda cin, cout, s, *, size, norm, padding: blocks.Skip(size),
    "dwsep": blocks.depthwise_separable,
    "ir": blocks.inverted_residual,
    "sg": blocks.sandglass,
    "basic": blocks.basic,
    "bottleneck": blocks.bottleneck,
}
CHANNEL_PRESERVING = {"maxpool", "skip"}


@dataclass(frozen=True)
class InputSpec:
    """What the network expects: NCHW float32 RGB, `size` x `size`, normalized as (x - mean) / std
    with x in [0, 1]."""

    size: int = 224
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    def shape(self, batch: int = 1) -> tuple[int, int, int, int]:
        return (batch, 3, self.size, self.size)


IMAGENET = InputSpec()
# TF's [-1, 1] scaling ((x - 127.5) / 127.5 on 0-255 pixels), used by the Keras MobileNets.
TF_MINUS1_1 = InputSpec(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


@dataclass(frozen=True)
class Architecture:
    """A whole network as data: feature rows, head rows, BN settings, padding rule and input spec."""

    rows: tuple
    head: tuple
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1
    padding: str = "symmetric"  # or "same": TF-"SAME", asymmetric at stride 2
    num_classes: int = 1000
    input: InputSpec = IMAGENET
    # Init hint for seeded weights: the final BN gamma of each residual branch. A trained net's residual
    # branches are small next to the identity; 0.25 keeps random-weight activations realistic.
    residual_gamma: float = 0.25

    def variant(self, **changes) -> "Architecture":
        return replace(self, **changes)

    def definition_hash(self) -> str:
        """Hash of everything that defines the network (not its weights)."""
        text = json.dumps(self._as_jsonable(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def _as_jsonable(self):
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        data["input"] = self.input.__dict__
        return json.loads(json.dumps(data, default=list))


class Network(nn.Module):
    """features -> head. `head` ends with the classifier; everything before it is `features`."""

    def __init__(self, features: nn.Sequential, head: nn.Sequential):
        super().__init__()
        self.features = features
        self.head = head

    def forward(self, x):
        return self.head(self.features(x))


def _expand_rows(rows):
    for row in rows:
        op, out, stride, repeats, *rest = row
        kwargs = rest[0] if rest else {}
        for i in range(repeats):
            yield op, out, stride if i == 0 else 1, kwargs


def build(arch: Architecture) -> Network:
    """Build the PyTorch network for `arch` (weights are left at PyTorch defaults; see models.weights)."""
    norm = blocks.Norm(arch.bn_eps, arch.bn_momentum)
    size, channels = arch.input.size, 3
    features = []
    for op, out, stride, kwargs in _expand_rows(arch.rows):
        out = channels if op in CHANNEL_PRESERVING else out
        block = BLOCKS[op](channels, out, stride, size=size, norm=norm, padding=arch.padding, **kwargs)
        features.append(block)
        size, channels = block.out_size, out
    head = []
    for row in arch.head:
        op, *args = row
        if op == "pool":
            head.append(blocks.GlobalPool())
        elif op == "fc":
            out, opts = args[0], (args[1] if len(args) > 1 else {})
            head += [nn.Linear(channels, out, bias=opts.get("bias", True)), blocks.ACTIVATIONS[opts.get("act")]()]
            channels = out
        elif op == "dropout":
            head.append(nn.Dropout(args[0]))
        elif op == "classifier":
            head.append(nn.Linear(channels, arch.num_classes))
        else:
            raise ValueError(f"unknown head op {op!r}; expected pool, fc, dropout or classifier")
    return Network(nn.Sequential(*features), nn.Sequential(*head))


def count_params(net: nn.Module) -> int:
    """Trainable parameters as PyTorch counts them (BN running statistics are buffers, not counted)."""
    return sum(p.numel() for p in net.parameters())


def count_macs(net: nn.Module, spec) -> int:
    """Multiply-accumulates of every conv and linear layer for one input (BN, activations, pooling,
    SE multiplies and residual adds excluded, as in the published counts). `spec`: an InputSpec, a
    batch-1 input shape, or a list of them (a network with several inputs)."""
    import torch

    total = 0

    def conv_hook(mod, inp, out):
        nonlocal total
        total += out.numel() * (mod.in_channels // mod.groups) * mod.kernel_size[0] * mod.kernel_size[1]

    def linear_hook(mod, inp, out):
        nonlocal total
        total += mod.in_features * mod.out_features

    hooks = [m.register_forward_hook(conv_hook) for m in net.modules() if isinstance(m, nn.Conv2d)]
    hooks += [m.register_forward_hook(linear_hook) for m in net.modules() if isinstance(m, nn.Linear)]
    try:
        with torch.no_grad():
            if isinstance(spec, InputSpec):
                net.eval()(torch.zeros(spec.shape(1)))
            elif isinstance(spec, list):
                net.eval()(*(torch.zeros(tuple(s)) for s in spec))
            else:
                net.eval()(torch.zeros(tuple(spec)))
    finally:
        for h in hooks:
            h.remove()
    return total
