"""Optimized variants of a digits-trained model as matrix subjects: pruned and distilled (the workflows of the
optimize-and-deploy seed) and quantization-aware trained (the QAT seed's; models.qat, which also makes the
real-weight ImageNet QAT subject). Each is made from the shipped `<base>_digits` weights by a fixed recipe with the
training kernels pinned (models.training.DETERMINISTIC_ENV), and shipped like them (models/checkpoints/,
float16, sha256 in MANIFEST.json), so every machine judges the same bytes:

    prune50u, prune75u   unstructured: torch.nn.utils.prune.l1_unstructured on every dense Conv2d and the
                         Linear (that fraction of each tensor's smallest weights set to zero), the mask kept
                         while fine-tuning with the base's own recipe and budget, then made permanent
                         (prune.remove). Depthwise filters (9 weights a channel, 3 % of the weights) are left
                         dense; measured at 75 %: 97.75 % accuracy, with them pruned too 93.5 %, by one global
                         L1 threshold instead 87.25 %
    prune50s, prune75s   structured: that fraction of the channels of every prunable Conv2d removed by
                         torch-pruning's dependency graph (L1 magnitude; residual channels pruned together;
                         the classifier kept), fine-tuned as above. The shipped file holds the smaller tensors;
                         `Shipped` rebuilds the narrower modules from their shapes (fit_shapes)
    kd                   the base architecture from the same seeded init, trained by the base's own recipe
                         and budget with a ResNet-50 teacher (resnet50_digits): Hinton's loss, KL of
                         temperature-softened logits blended with cross-entropy. Its control is the base
                         itself (same init, recipe and budget, no teacher)
    qat                  quantization-aware training from the base's weights (models.qat: BN folded, FX
                         prepare_qat_fx, 7-bit per-channel weights, uint8 activations, 3 epochs at lr 1e-4).
                         Ships its learned scales; its int8 artifacts on the paths that read QDQ ONNX carry
                         them (Format.qat_artifacts), the others quantize its float weights again

    python -m models.variants [VARIANT ...]     (needs the `variants` extra: torch-pruning)

Float16 storage keeps exact zeros, so a shipped pruned tensor has exactly the sparsity it was trained with.
"""
from __future__ import annotations

import argparse
import os
import sys

BASE = "mobilenet_v2"
TEACHER = "resnet50"
FINE_TUNE = {"epochs": 12, "lr": 3e-3}  # models.training.RECIPE's own budget
KD = {"temperature": 4.0, "alpha": 0.7}  # loss = alpha * T^2 * KL(student_T || teacher_T) + (1 - alpha) * CE
VARIANTS = {
    "prune50u": {"kind": "prune", "structured": False, "amount": 0.5, "depthwise": "dense", **FINE_TUNE},
    "prune75u": {"kind": "prune", "structured": False, "amount": 0.75, "depthwise": "dense", **FINE_TUNE},
    "prune50s": {"kind": "prune", "structured": True, "amount": 0.5, **FINE_TUNE},
    "prune75s": {"kind": "prune", "structured": True, "amount": 0.75, **FINE_TUNE},
    "kd": {"kind": "distill", "teacher": f"{TEACHER}_digits", **KD},
    "qat": {"kind": "qat", "flow": "torch.ao FX prepare_qat_fx, BatchNorm folded first (models.qat)"},
}
VERSION = 1
# The CI profile runs one of each kind; the rest run in `tox -e matrix`.
IN_CI = ("prune75u", "prune50s", "kd", "qat")


def base_id() -> str:
    """The subject id of the model every variant is made from (or, for kd, compared against)."""
    return f"{BASE}_digits"


def subject_id(variant: str, base: str = BASE) -> str:
    return f"{base}_digits_{variant}"


def subjects() -> list:
    """The variants as digits subjects (their marks: `variant`, and `extended` outside the CI profile)."""
    from models.digits import SIZE
    from models.subject import Subject
    from models.weights import Shipped

    return [Subject.of(BASE, Shipped(subject_id(v)), id=subject_id(v), num_classes=10, input_size=SIZE,
                       data="digits", variant=v, marks=("variant",) + (() if v in IN_CI else ("extended",)))
            for v in VARIANTS]


def variant_of(subject_id_: str) -> tuple[str, str] | None:
    """(base subject id, variant) for a variant's subject id, else None."""
    for v in VARIANTS:
        if subject_id_ == subject_id(v):
            return f"{BASE}_digits", v
    return None


def weight_tensors(net) -> dict:
    """name -> weight of every Conv2d and Linear: what pruning acts on."""
    from torch import nn

    return {name: m.weight for name, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}


def sparsity(net) -> float:
    """The fraction of exact zeros over every Conv2d and Linear weight."""
    tensors = list(weight_tensors(net).values())
    return float(sum(int((t == 0).sum()) for t in tensors) / sum(t.numel() for t in tensors))


def fit_shapes(net, state: dict) -> None:
    """Replace every Conv2d, BatchNorm2d and Linear of `net` whose tensors in `state` are narrower by one of
    that width (a depthwise conv stays depthwise): how a structurally pruned checkpoint loads into the
    architecture it was pruned from."""
    from torch import nn

    for name, module in list(net.named_modules()):
        key = f"{name}.weight"
        if key not in state or tuple(state[key].shape) == tuple(module.weight.shape):
            continue
        shape = tuple(state[key].shape)
        if isinstance(module, nn.Conv2d):
            depthwise = module.groups > 1 and module.groups == module.in_channels == module.out_channels
            groups = shape[0] if depthwise else module.groups
            new = nn.Conv2d(shape[1] * groups, shape[0], module.kernel_size, module.stride, module.padding,
                            groups=groups, bias=module.bias is not None)
        elif isinstance(module, nn.BatchNorm2d):
            new = nn.BatchNorm2d(shape[0], eps=module.eps, momentum=module.momentum)
        elif isinstance(module, nn.Linear):
            new = nn.Linear(shape[1], shape[0], bias=module.bias is not None)
        else:
            raise ValueError(f"{key}: shape {shape} in the checkpoint, {tuple(module.weight.shape)} in the "
                             f"network, and a {type(module).__name__} cannot be narrowed")
        parent, _, attr = name.rpartition(".")
        setattr(net.get_submodule(parent) if parent else net, attr, new)


def _prune_unstructured(net, amount: float) -> None:
    from torch.nn.utils import prune

    for module in _prunable(net):
        if getattr(module, "groups", 1) == 1:
            prune.l1_unstructured(module, "weight", amount=amount)


def _make_permanent(net) -> None:
    from torch.nn.utils import prune

    for module in _prunable(net):
        if prune.is_pruned(module):
            prune.remove(module, "weight")


def _prunable(net):
    from torch import nn

    return [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _prune_structured(net, amount: float, input_shape) -> None:
    import torch
    import torch_pruning as tp
    from torch import nn

    classifier = [m for m in net.modules() if isinstance(m, nn.Linear)][-1]
    pruner = tp.pruner.MagnitudePruner(net, torch.zeros(input_shape), importance=tp.importance.MagnitudeImportance(p=1),
                                       pruning_ratio=amount, ignored_layers=[classifier])
    pruner.step()


def _distill(net, arch, teacher, recipe: dict, log) -> dict:
    """models.training.train with the teacher's softened logits in the loss (the same data, shifts, schedule
    and budget as the base)."""
    import torch
    import torch.nn.functional as F

    from models import training

    t, alpha = recipe["temperature"], recipe["alpha"]
    teacher.eval()

    def loss_fn(logits, xb, yb):
        with torch.no_grad():
            soft = F.log_softmax(teacher(xb) / t, 1)
        kl = F.kl_div(F.log_softmax(logits / t, 1), soft, log_target=True, reduction="batchmean")
        return alpha * t * t * kl + (1 - alpha) * F.cross_entropy(logits, yb)

    return training.train(net, arch, "digits", log=log, loss_fn=loss_fn)


def make(variant: str, log=print) -> tuple[dict, dict, dict]:
    """(state_dict, recipe, metrics) of one variant."""
    import hashlib

    import torch
    from safetensors.torch import save

    from models import digits, training
    from models.subject import Subject
    from models.weights import SeededInit, Shipped

    spec = VARIANTS[variant]
    base = Subject.of(BASE, Shipped(f"{BASE}_digits"), id=f"{BASE}_digits", num_classes=10,
                      input_size=digits.SIZE, data="digits")
    arch = base.arch()
    recipe = {"variant": variant, "version": VERSION, "task": "digits", "base": f"{BASE}_digits", **spec,
              "training": training.RECIPE, "kernels": training.DETERMINISTIC_ENV}
    if spec["kind"] == "qat":
        from models import qat

        recipe.update(qat.RECIPE, base_sha256=Shipped(f"{BASE}_digits").identity()["sha256"])
        state, metrics = qat.make(base.build(), arch, log=log)
        return state, recipe, {**metrics, "params": sum(v.numel() for k, v in state.items()
                                                        if not qat.is_qparam(k))}
    if spec["kind"] == "prune":
        net = base.build()
        recipe["base_sha256"] = Shipped(f"{BASE}_digits").identity()["sha256"]
        params_before = sum(p.numel() for p in net.parameters())
        if spec["structured"]:
            _prune_structured(net, spec["amount"], arch.input.shape(1))
        else:
            _prune_unstructured(net, spec["amount"])
        metrics = training.train(net, arch, "digits", {**training.RECIPE, **FINE_TUNE}, log=log)
        _make_permanent(net)
        metrics["params_before"] = params_before
    else:
        teacher = Subject.of(TEACHER, Shipped(spec["teacher"]), id=spec["teacher"], num_classes=10,
                             input_size=digits.SIZE, data="digits").build()
        recipe["teacher_sha256"] = Shipped(spec["teacher"]).identity()["sha256"]
        recipe["init"] = SeededInit(0).identity()
        net = Subject.of(BASE, SeededInit(0), id=f"{BASE}_digits", num_classes=10, input_size=digits.SIZE,
                         data="digits").build()
        metrics = _distill(net, arch, teacher, spec, log)
    state = {k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}
    metrics = {**metrics, "params": sum(p.numel() for p in net.parameters()), "sparsity": sparsity(net),
               "trained_float32_sha256": hashlib.sha256(save(state)).hexdigest()}
    return state, recipe, metrics


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="python -m models.variants",
        description=f"make the pruned, distilled and quantization-aware trained variants of {BASE}_digits "
                    "with pinned kernels and write "
                    "models/checkpoints/<id>.safetensors (float16) with their MANIFEST entries")
    parser.add_argument("variants", nargs="*",
                        help=f"variants to make (default: all of {', '.join(VARIANTS)}, and the real-weight "
                             "ImageNet QAT subject mobilenet_v2_torchvision_qat)")
    args = parser.parse_args(argv)
    from models import qat

    natural = qat.IMAGENET["id"]
    todo = args.variants or [*VARIANTS, natural]
    unknown = sorted(set(todo) - {*VARIANTS, natural})
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}, {natural}")
    from models import training

    if any(os.environ.get(k) != v for k, v in training.DETERMINISTIC_ENV.items()):
        os.execve(sys.executable, [sys.executable, "-m", "models.variants", *todo],
                  {**os.environ, **training.DETERMINISTIC_ENV})
    import torch

    from models import digits
    from models.weights import shipped_state, write_shipped

    for variant in todo:
        if variant == natural:  # the real-weight ImageNet QAT subject (models.qat.IMAGENET)
            state, recipe, metrics = qat.make_natural(log=lambda line: print(line, flush=True))
            path = write_shipped(natural, state, {**recipe, "structure": "qat"}, metrics)
            print(f"[variants] {natural} -> {path}", flush=True)
            continue
        state, recipe, metrics = make(variant, log=lambda line: print(line, flush=True))
        # the shipped accuracy: float16-rounded parameters, as every machine will load them
        from models.subject import Subject
        from models.weights import SeededInit

        net = Subject.of(BASE, SeededInit(0), id="probe", num_classes=10, input_size=digits.SIZE,
                         data="digits").network()
        arch = Subject.of(BASE, num_classes=10, input_size=digits.SIZE).arch()
        shipped = shipped_state(state)
        x, y = digits.split(arch.input, "test")

        def accuracy_of(model) -> float:
            with torch.inference_mode():
                return float((model(torch.from_numpy(x)).argmax(1).numpy() == y).mean() * 100)

        structure = {}
        if VARIANTS[variant]["kind"] == "qat":
            from models import qat

            net = qat.folded(net)
            net.load_state_dict({k: v for k, v in shipped.items() if not qat.is_qparam(k)})
            structure = {"structure": "qat"}
            metrics["test_accuracy_fake_quant"] = accuracy_of(qat.quantized_network(
                qat.folded(net), shipped, arch.input.shape(1)))
        else:
            fit_shapes(net, shipped)
            net.load_state_dict(shipped)
            structure = {"structure": "pruned"} if recipe.get("structured") else {}
        net.eval()
        accuracy = accuracy_of(net)
        metrics = {**metrics, "test_accuracy_float32": metrics.pop("test_accuracy"), "test_accuracy": accuracy,
                   "seconds": round(metrics["seconds"], 1), "shipped_sparsity": sparsity(net)}
        path = write_shipped(subject_id(variant), state, {**recipe, **structure}, metrics)
        print(f"[variants] {subject_id(variant)}: {accuracy:.2f} % shipped, sparsity {metrics.get('sparsity', 0):.3f}, "
              f"{metrics['params']} params -> {path}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
