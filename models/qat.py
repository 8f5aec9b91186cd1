"""Quantization-aware training (the QAT seed's workflow), and the network a QAT subject ships as. Two
subjects: mobilenet_v2_digits_qat (models.variants' `qat`, labels) and mobilenet_v2_torchvision_qat (IMAGENET
below: real weights, no labels, fine-tuned against its own float self).

Flow: PyTorch's FX graph mode QAT (torch.ao.quantization.quantize_fx.prepare_qat_fx). PT2E's
`prepare_qat_pt2e` lives in torchao, which is not installed beside torch 2.13.0 here, and its graphs export
through the dynamo ONNX exporter the suite does not use; FX QAT's fake-quantize modules export through the
suite's own TorchScript exporter as QuantizeLinear/DequantizeLinear pairs carrying the learned scales, which
is what every runtime that reads QDQ ONNX (onnxruntime, OpenVINO) consumes (converters.qat_onnx writes it).

  1. BatchNorm folded into its convolution first (`folded`: torch.fx.experimental.optimization.fuse, eval
     mode): BN is frozen for the whole fine-tune, and the exported graph is plain Conv + QDQ (FX's ConvBn QAT
     modules export as Conv, Div and BatchNormalization).
  2. `prepare`: prepare_qat_fx with activations per-tensor affine uint8 (moving-average min/max) and weights
     per-channel symmetric int8 in 7 bits (SevenBitWeights): the suite's onnxruntime int8 stores 7-bit
     weights (reduce_range) so that CPUs without VNNI, whose u8 x s8 pair sums saturate at int16, compute the
     same artifact as CPUs with it; ONNX's QDQ export only accepts quant ranges (-128, 127), so the 7 bits
     come from the scale (x 127.5 / 63.5), not the range.
  3. Fine-tuned (digits: models.training's recipe at RECIPE's budget; ImageNet: `make_natural`), kernels
     pinned, then observers frozen.

What ships (models/checkpoints/<id>.safetensors) is the prepared module's whole state: the folded float
weights and every fake-quantize module's scale and zero point (float32: they are the learned quantization).
The subject's PyTorch network is the folded float model (Subject.network folds; the learned quantization is
left out when the weights load); `quantized_network` is the same with the learned fake quantization on,
which is what a path that carries QAT must compute.
"""
from __future__ import annotations

RECIPE = {"epochs": 3, "lr": 1e-4}  # on top of models.training.RECIPE (batch, shifts, seed, schedule)
# the quantization parameters among a prepared module's state keys
QPARAM_MARKERS = ("activation_post_process", "weight_fake_quant", "fake_quant_enabled", "observer_enabled")


def learned(subject) -> bool:
    """Does the subject carry learned quantization (a QAT variant, models.variants)?"""
    if not getattr(subject, "variant", ""):
        return False
    from models.variants import VARIANTS

    return VARIANTS[subject.variant]["kind"] == "qat"


def shipped_state(subject) -> dict:
    """A QAT subject's whole shipped state: folded float weights and learned quantization parameters."""
    from models.weights import load_state_dict

    path, _ = subject.weights_source().resolve()
    return {k: v.float() if v.is_floating_point() else v for k, v in load_state_dict(path).items()}


def is_qparam(key: str) -> bool:
    return any(m in key for m in QPARAM_MARKERS)


def _observers():
    import torch
    from torch.ao.quantization import FakeQuantize, MovingAverageMinMaxObserver, PerChannelMinMaxObserver

    class SevenBitWeights(PerChannelMinMaxObserver):
        """Per-channel symmetric int8 whose scale spans 7 bits (|q| <= 64): see the module docstring."""

        def calculate_qparams(self):
            scale, zero_point = super().calculate_qparams()
            return scale * (127.5 / 63.5), zero_point

    activation = FakeQuantize.with_args(observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255,
                                        dtype=torch.quint8, qscheme=torch.per_tensor_affine)
    weight = FakeQuantize.with_args(observer=SevenBitWeights, quant_min=-128, quant_max=127, dtype=torch.qint8,
                                    qscheme=torch.per_channel_symmetric, ch_axis=0)
    return activation, weight


def folded(net):
    """`net` (eval mode) with every BatchNorm folded into its convolution: an FX GraphModule."""
    import warnings

    from torch.fx.experimental.optimization import fuse

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fuse(net.eval())


def prepare(folded_net, input_shape):
    """The folded network with the fake quantization of _observers inserted (FX prepare_qat_fx), train mode."""
    import warnings

    import torch
    from torch.ao.quantization import QConfig, QConfigMapping
    from torch.ao.quantization.quantize_fx import prepare_qat_fx

    activation, weight = _observers()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FX quantization's deprecation notice (torchao is the successor)
        return prepare_qat_fx(folded_net.train(), QConfigMapping().set_global(QConfig(activation, weight)),
                              (torch.zeros(input_shape),))


def quantized_network(float_net, state: dict, input_shape):
    """The learned fake-quantized network: `float_net` (the subject's folded float network) prepared the way
    it was trained, with the shipped state (weights and quantization parameters), observers off, eval mode."""
    import copy

    from torch.ao.quantization import disable_observer, enable_fake_quant

    net = prepare(copy.deepcopy(float_net), input_shape)  # FX QAT swaps the modules it is given
    net.load_state_dict(state)
    net.apply(disable_observer)
    net.apply(enable_fake_quant)
    return net.eval()


def activation_scales(state: dict) -> list[float]:
    """The learned per-tensor activation scales of a shipped QAT state (what a path must keep)."""
    return [float(v.reshape(-1)[0]) for k, v in sorted(state.items())
            if k.startswith("activation_post_process_") and k.endswith(".scale")]


def make(base_net, arch, log=print) -> tuple[dict, dict]:
    """(prepared state, metrics): QAT of the folded `base_net` on digits, observers frozen at the end."""
    import torch
    from torch.ao.quantization import disable_observer

    from models import training

    net = prepare(folded(base_net), arch.input.shape(1))
    metrics = training.train(net, arch, "digits", {**training.RECIPE, **RECIPE}, log=log)
    net.apply(disable_observer)
    net.eval()
    return {k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}, metrics


# --- the real-weight ImageNet subject: QAT without labels, against the float model's own outputs ----------
# torchvision's MobileNetV2 (IMAGENET1K_V1, models.zoo) fine-tuned as a fake-quantized student of its own
# float self on natural-image crops (models.images stream "qat": random-resized crops of the shipped photos,
# a stream of its own, so none is a parity input, though the photos are the same), KL divergence of the
# softmax outputs (AdamW at 1e-5: 1e-4 diverged to 0.9 dB SNR in 60 steps); the float model is the only
# teacher there is without labels. Judged by agreement with that float model: the subject's parity golden is
# its base's.
IMAGENET = {"base": "mobilenet_v2_torchvision", "id": "mobilenet_v2_torchvision_qat", "steps": 200, "batch": 8,
            "lr": 1e-5, "observer_batches": 4, "stream": "qat", "dropout": 0.0}


def natural_subjects() -> list:
    """The real-weight QAT subject (natural images, parity against its base's golden outputs), int8 only."""
    from models.subject import Subject
    from models.weights import Shipped

    return [Subject.of(IMAGENET["base"], Shipped(IMAGENET["id"]), id=IMAGENET["id"], variant="qat",
                       marks=("variant",), precisions=("int8",))]


def float_source(subject):
    """The float model a natural QAT subject is judged against (its golden outputs are that model's), or
    None for any other subject."""
    if subject.id != IMAGENET["id"]:
        return None
    from models.subject import Subject

    return Subject.of(IMAGENET["base"])


def make_natural(log=print) -> tuple[dict, dict, dict]:
    """(prepared state, recipe, metrics) of the ImageNet QAT subject."""
    import time

    import numpy as np
    import torch
    import torch.nn.functional as F

    from models import datasets, images
    from models.subject import Subject
    from models.training import DETERMINISTIC_ENV

    base = Subject.of(IMAGENET["base"])
    spec = base.arch().input
    teacher = base.build().eval()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    net = prepare(folded(base.build()), spec.shape(1))
    for module in net.modules():  # the student matches a deterministic teacher. Measured over 60 steps:
        if isinstance(module, torch.nn.Dropout):  # dropout on, 7.0 dB (lr 3e-5); off, 11.8 dB (lr 1e-5)
            module.p = 0.0

    def batch(step: int) -> torch.Tensor:
        return torch.from_numpy(images.normalize(images.natural_crops(IMAGENET["batch"], spec.size, IMAGENET["stream"],
                                                                      variant=step + 1), spec))

    start = time.perf_counter()
    with torch.no_grad():  # the observers see a few batches before the first step (the PTQ starting point)
        for i in range(IMAGENET["observer_batches"]):
            net(batch(10_000 + i))
    opt = torch.optim.AdamW(net.parameters(), lr=IMAGENET["lr"], weight_decay=0.0)
    for step in range(IMAGENET["steps"]):
        x = batch(step)
        with torch.no_grad():
            target = F.log_softmax(teacher(x), 1)
        loss = F.kl_div(F.log_softmax(net(x), 1), target, log_target=True, reduction="batchmean")
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (step + 1) % 10 == 0:
            log(f"[convsuite] qat {IMAGENET['id']}: step {step + 1}/{IMAGENET['steps']}, KL {loss.item():.4f}, "
                f"{time.perf_counter() - start:.0f} s")
    from torch.ao.quantization import disable_observer

    net.apply(disable_observer)
    net.eval()
    state = {k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}
    x = datasets.parity_inputs(base)
    with torch.inference_mode():
        ref, out = teacher(torch.from_numpy(x)).numpy(), net(torch.from_numpy(x)).numpy()
    agreement = float((ref.argmax(1) == out.argmax(1)).mean())
    snr = float(10 * np.log10((ref ** 2).sum() / ((ref - out) ** 2).sum()))
    recipe = {"variant": "qat", "task": "imagenet, no labels: KL to the float model", **IMAGENET,
              "kernels": DETERMINISTIC_ENV, "observers": "moving-average min/max activations, 7-bit weights"}
    metrics = {"seconds": round(time.perf_counter() - start, 1), "fake_quant_top1_agreement": agreement,
               "fake_quant_snr_db": snr}
    log(f"[convsuite] qat {IMAGENET['id']}: fake-quantized vs float on the parity inputs: top-1 agreement "
        f"{agreement:.3f}, SNR {snr:.1f} dB")
    return state, recipe, metrics
