"""An LR-ASPP segmentation head (MobileNetV3 paper, section 6.4) on the zoo's MobileNetV3-Large, on a
non-square input, registered from outside the package:

    pytest --models-from=examples/segmentation.py -k lraspp

The backbone is the zoo's MobileNetV3-Large with its shipped weights (no dilation: the high branch is at
stride 32, the low one at stride 8). LR-ASPP's high branch: a global-pooled sigmoid gate on the 960-channel
features, then the backbone's own classifier (its 960->1280 hard-swish layer and 1280->1000 classifier as
1x1 convolutions, restricted to 20 distinct ImageNet classes, several of which the shipped photos show) per
location, upsampled bilinearly to stride 8; plus a seeded 1x1 low-branch classifier on the stride-8
features. A class-activation map, not trained for segmentation, but its arg-max map follows what each
region of a photo shows. Class 0 (background) is a constant logit.

Output: mask (N, 21, 24, 32) logits at stride 8 of a 192 x 256 input (the final upsampling to the input
size is left to post-processing, as deployed LR-ASPP models commonly do).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models import Input, Output, Subject, model, seeded_

CLASSES = (281, 967, 504, 698, 872, 657, 812, 985, 339, 948, 417, 759, 409, 546, 574, 620, 717, 779, 850, 430)
BACKGROUND_LOGIT = 8.0
LOW_STAGE = 7  # features[:7] ends at stride 8 (40 channels)


class LRASPP(nn.Module):
    def __init__(self):
        super().__init__()
        backbone = Subject.of("mobilenet_v3_large").build()  # the zoo's shipped weights
        self.low = backbone.features[:LOW_STAGE]
        self.high = backbone.features[LOW_STAGE:]
        hidden, classifier = backbone.head[1], backbone.head[4]
        self.gate = seeded_(nn.Conv2d(960, 960, 1), seed=1)
        with torch.no_grad():
            self.gate.weight.mul_(0.1)  # a gentle gate around 0.5: the class map keeps its meaning
        self.hidden = nn.Conv2d(960, 1280, 1)
        self.cls = nn.Conv2d(1280, len(CLASSES) + 1, 1)
        with torch.no_grad():
            self.hidden.weight.copy_(hidden.weight[:, :, None, None])
            self.hidden.bias.copy_(hidden.bias)
            self.cls.weight.zero_()
            self.cls.bias.fill_(BACKGROUND_LOGIT)
            self.cls.weight[1:, :, 0, 0] = classifier.weight[list(CLASSES)]
            self.cls.bias[1:] = classifier.bias[list(CLASSES)]
        self.low_cls = seeded_(nn.Conv2d(40, len(CLASSES) + 1, 1), seed=2)
        with torch.no_grad():
            self.low_cls.weight.mul_(0.1)

    def forward(self, x):
        low = self.low(x)
        high = self.high(low)
        gate = torch.sigmoid(self.gate(F.adaptive_avg_pool2d(high, 1)))
        high = self.cls(F.hardswish(self.hidden(high * gate * 2)))
        high = F.interpolate(high, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return high + self.low_cls(low)


@model("lraspp_mobilenet_v3_large", input=Input((3, 192, 256), source="photos"), outputs=[Output("mask", "dense")])
def lraspp_mobilenet_v3_large():
    return LRASPP()
