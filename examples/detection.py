"""An SSDLite-style detector on the zoo's MobileNetV2, registered from outside the package:

    pytest --models-from=examples/detection.py -k ssdlite

The backbone is the zoo's MobileNetV2 with its shipped weights. Anchors sit on three feature maps of the
final 1280-channel features (stride 32, then average-pooled to strides 64 and 128), three anchors (aspect
1, 2, 1/2) per location. The class head is the backbone's own ImageNet classifier applied at every location
as a 1x1 convolution, restricted to 20 distinct classes, several of which the shipped photos show (a
class-activation map: peaked scores where the photo shows the class, not trained for detection), plus a
constant background logit. The box head is SSDLite's separable convolution (depthwise 3x3, BN, ReLU6,
pointwise 1x1), seeded. Boxes are decoded inside the graph (SSD variances 0.1 / 0.2) to x1 y1 x2 y2 in
[0, 1]: the reshapes, permutes and concats of a detection head are where converters' layout bugs live.

Outputs: boxes (N, 402, 4) and scores (N, 402, 21), softmax, column 0 background. No NMS: its output size
depends on the data, and each runtime's NMS is its own; the suite compares what every path computes.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from models import Input, Output, Subject, model, seeded_

# 20 distinct ImageNet classes, several of which the shipped photos show (tabby cat, espresso, coffee mug,
# palace, tripod, missile, space shuttle, daisy, ...); no near-synonyms (five cat breeds tie with each other)
# Class 0 of the output is background.
CLASSES = (281, 967, 504, 698, 872, 657, 812, 985, 339, 948, 417, 759, 409, 546, 574, 620, 717, 779, 850, 430)
ASPECTS = (1.0, 2.0, 0.5)
SCALES = (0.35, 0.6, 0.85)  # anchor side per feature map, as a fraction of the image
BACKGROUND_LOGIT = 8.0


def anchors(sizes) -> torch.Tensor:
    """(A, 4) cx, cy, w, h in [0, 1] for feature maps of `sizes` (h, w), ASPECTS anchors per location."""
    out = []
    for (h, w), scale in zip(sizes, SCALES):
        for i in range(h):
            for j in range(w):
                for a in ASPECTS:
                    out.append(((j + 0.5) / w, (i + 0.5) / h, scale * math.sqrt(a), scale / math.sqrt(a)))
    return torch.tensor(out, dtype=torch.float32)


class SSDLite(nn.Module):
    def __init__(self, size: int = 320):
        super().__init__()
        backbone = Subject.of("mobilenet_v2").build()  # the zoo's shipped weights
        self.features = backbone.features
        classifier = backbone.head[-1]
        self.cls = nn.Conv2d(1280, len(CLASSES) + 1, 1)
        with torch.no_grad():
            self.cls.weight.zero_()
            self.cls.bias.fill_(BACKGROUND_LOGIT)
            self.cls.weight[1:, :, 0, 0] = classifier.weight[list(CLASSES)]
            self.cls.bias[1:] = classifier.bias[list(CLASSES)]
        self.down = nn.ModuleList([nn.AvgPool2d(2), nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)])
        self.box = nn.ModuleList([seeded_(nn.Sequential(
            nn.Conv2d(1280, 1280, 3, padding=1, groups=1280, bias=False), nn.BatchNorm2d(1280), nn.ReLU6(),
            nn.Conv2d(1280, 4 * len(ASPECTS), 1)), seed=level) for level in range(3)])
        with torch.no_grad():
            for head in self.box:
                head[-1].weight.mul_(0.25)  # regressions that move boxes by about their anchor's size
        s = size // 32
        sizes = [(s, s), ((s + 1) // 2, (s + 1) // 2), ((s + 3) // 4, (s + 3) // 4)]
        self.register_buffer("anchors", anchors(sizes), persistent=False)

    def forward(self, x):
        f = self.features(x)
        maps = [f, self.down[0](f)]
        maps.append(self.down[1](maps[1]))
        n = x.shape[0]
        c, k = len(CLASSES) + 1, len(ASPECTS)  # one class score per location, shared by its k anchors
        logits = torch.cat([self.cls(m).permute(0, 2, 3, 1).unsqueeze(3).expand(n, m.shape[2], m.shape[3], k, c)
                            .reshape(n, -1, c) for m in maps], 1)
        deltas = torch.cat([b(m).permute(0, 2, 3, 1).reshape(n, -1, 4) for b, m in zip(self.box, maps)], 1)
        a = self.anchors
        centre = a[:, :2] + deltas[..., :2] * 0.1 * a[:, 2:]
        half = a[:, 2:] * torch.exp(deltas[..., 2:] * 0.2) / 2
        boxes = torch.cat([centre - half, centre + half], -1)
        return {"boxes": boxes, "scores": torch.softmax(logits, -1)}


@model("ssdlite_mobilenet_v2", input=Input((3, 320, 320), source="photos"),
       outputs=[Output("boxes", "boxes", scores="scores"), Output("scores", "scores")])
def ssdlite_mobilenet_v2():
    return SSDLite(320)
