"""Where a model's weights come from: a deterministic seeded init (numpy PCG64, no torch RNG) with
BatchNorm statistics calibrated on natural images, weights shipped with the suite (models/checkpoints/,
verified by sha256), a checkpoint file loaded weights-only, or training by the suite.

Every source is a frozen dataclass with an `identity()` (a JSON-able dict that goes into cache keys and
golden manifests) and `apply(net, arch)` that fills the weights of a freshly built network. Sources cross
process boundaries as JSON through `to_spec` / `from_spec`, nowhere else.
"""
from __future__ import annotations

import hashlib
import pickle
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models import images
from models.blocks import Residual


class CheckpointError(ValueError):
    """A checkpoint that cannot be used as the named architecture's weights."""


@dataclass(frozen=True)
class SeededInit:
    KIND = "seeded"
    """He-normal convs, 1/sqrt(fan_in) linears, zero biases, residual-branch gamma from the architecture,
    then BatchNorm running statistics measured on `bn_images` natural crops (stream "bn")."""

    seed: int = 0
    bn_images: int = 64

    def identity(self) -> dict:
        return {"kind": "seeded", "seed": self.seed, "init": "he-fan-out/linear-fan-in/v1",
                "bn_calibration": {"stream": "bn", "count": self.bn_images, "photos": list(images.PHOTOS)}}

    def apply(self, net: nn.Module, arch) -> None:
        rng = np.random.Generator(np.random.PCG64(self.seed))

        def normal(shape, std):
            return torch.from_numpy(rng.normal(0.0, std, size=shape).astype(np.float32))

        with torch.no_grad():
            for module in net.modules():
                if isinstance(module, nn.Conv2d):
                    k = module.kernel_size[0] * module.kernel_size[1]
                    module.weight.copy_(normal(module.weight.shape, np.sqrt(2.0 / (k * module.out_channels
                                                                                    / module.groups))))
                elif isinstance(module, nn.Linear):
                    module.weight.copy_(normal(module.weight.shape, 1.0 / np.sqrt(module.in_features)))
                elif isinstance(module, nn.BatchNorm2d):
                    module.weight.fill_(1.0)
                if getattr(module, "bias", None) is not None:
                    module.bias.zero_()
            for module in net.modules():
                if isinstance(module, Residual) and module.use_residual:
                    module.last_bn.weight.fill_(arch.residual_gamma)
        calibrate_batchnorm(net, images.image_set("bn", self.bn_images, arch.input))


def calibrate_batchnorm(net: nn.Module, inputs: np.ndarray, batch: int = 16) -> None:
    """Replace every BN's running mean/var with the average of its batch statistics over `inputs`."""
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    net.train()
    with torch.no_grad():
        # near-equal chunks: a last batch of one sample would have no batch statistics at 1x1 resolution
        for chunk in np.array_split(inputs, max(1, int(np.ceil(len(inputs) / batch)))):
            net(torch.from_numpy(np.ascontiguousarray(chunk)))
    for m, momentum in zip(bns, saved):
        m.momentum = momentum
    net.eval()


# --- checkpoints ---------------------------------------------------------------------------------------

def _lukemelas_efficientnet(key: str, net: nn.Module) -> str:
    """lukemelas / ml-illustrated EfficientNet keys -> ours (`features.N`, `branch.expand/dw/project`)."""
    last = len(net.features) - 1
    classifier = len(net.head) - 1
    rules = [
        (r"^_conv_stem\.(.*)", r"features.0.conv.\1"),
        (r"^_bn0\.(.*)", r"features.0.bn.\1"),
        (r"^_conv_head\.(.*)", rf"features.{last}.conv.\1"),
        (r"^_bn1\.(.*)", rf"features.{last}.bn.\1"),
        (r"^_fc\.(.*)", rf"head.{classifier}.\1"),
    ]
    for pattern, repl in rules:
        if re.match(pattern, key):
            return re.sub(pattern, repl, key)
    m = re.match(r"^_blocks\.(\d+)\.(_expand_conv|_bn0|_depthwise_conv|_bn1|_project_conv|_bn2)\.(.*)", key)
    if not m:
        return key
    part = {"_expand_conv": "expand.conv", "_bn0": "expand.bn", "_depthwise_conv": "dw.conv",
            "_bn1": "dw.bn", "_project_conv": "project.conv", "_bn2": "project.bn"}[m.group(2)]
    return f"features.{int(m.group(1)) + 1}.branch.{part}.{m.group(3)}"


def _torchvision_mobilenet_v2(key: str, net: nn.Module) -> str:
    """torchvision MobileNetV2 keys (`features.N.conv.K...`, `classifier.1`) -> ours."""
    last = len(net.features) - 1
    m = re.match(rf"^features\.(0|{last})\.([01])\.(.*)", key)
    if m:
        return f"features.{m.group(1)}.{'conv' if m.group(2) == '0' else 'bn'}.{m.group(3)}"
    m = re.match(r"^features\.(\d+)\.conv\.(\d+(?:\.\d+)?)\.(.*)", key)
    if m:
        # t = 1 blocks (no expansion conv): dw conv+bn, project conv, project bn; others: expand, dw, project
        parts = ({"0.0": "dw.conv", "0.1": "dw.bn", "1": "project.conv", "2": "project.bn"}
                 if "expand" not in dict(net.features[int(m.group(1))].branch.named_children())
                 else {"0.0": "expand.conv", "0.1": "expand.bn", "1.0": "dw.conv", "1.1": "dw.bn",
                       "2": "project.conv", "3": "project.bn"})
        if m.group(2) in parts:
            return f"features.{m.group(1)}.branch.{parts[m.group(2)]}.{m.group(3)}"
    m = re.match(r"^classifier\.1\.(.*)", key)
    return f"head.{len(net.head) - 1}.{m.group(1)}" if m else key


KEY_MAPS = {None: lambda key, net: key, "lukemelas_efficientnet": _lukemelas_efficientnet,
            "torchvision_mobilenet_v2": _torchvision_mobilenet_v2}


@lru_cache(maxsize=None)
def file_sha256(path: str) -> str:
    """sha256 of a checkpoint, memoized per path for the process (checkpoints do not change mid-run)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state_dict from `.safetensors` or a `.pth`/`.pt` loaded with weights_only=True (never full pickle)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError) as exc:
        raise CheckpointError(
            f"{path} refused: it needs full unpickling (it stores Python objects, not only tensors), which "
            f"can run arbitrary code. Re-save it as a plain state_dict: torch.save(model.state_dict(), "
            f"path) or safetensors. Loader said: {str(exc).splitlines()[0]}") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} is not a state_dict (a dict of tensor names to tensors)")
    return obj


@dataclass(frozen=True)
class Checkpoint:
    KIND = "checkpoint"
    """Weights from a file (state_dict `.pth` weights-only, or safetensors), or from a file shipped in a
    Python package (`package`). `key_map` names a KEY_MAPS entry that renames foreign keys onto ours."""

    path: str | None = None
    package: str | None = None
    key_map: str | None = None
    install: str | None = None  # how to install `package` when it is missing

    @classmethod
    def from_package(cls, package: str, key_map: str | None = None, install: str | None = None) -> "Checkpoint":
        return cls(package=package, key_map=key_map, install=install)

    def resolve(self) -> Path:
        if self.path:
            return Path(self.path).expanduser().resolve()
        try:
            module = __import__(self.package)
        except ImportError:
            how = f"`{self.install}`" if self.install else "the suite's dependencies (see README)"
            raise CheckpointError(f"weights package {self.package!r} is not installed; install it with {how} "
                                  f"or point the model at a checkpoint") from None
        files = sorted(Path(module.__file__).parent.rglob("*.pth"))
        if len(files) != 1:
            raise CheckpointError(f"expected one .pth file in package {self.package}, found {len(files)}")
        return files[0]

    def identity(self) -> dict:
        path = self.resolve()
        return {"kind": self.KIND, "file": path.name, "sha256": file_sha256(str(path)), "key_map": self.key_map}

    def apply(self, net: nn.Module, arch) -> None:
        path = self.resolve()
        rename = KEY_MAPS[self.key_map]
        state = {rename(k, net): v for k, v in load_state_dict(path).items()}
        expected = net.state_dict()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        wrong = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
        if missing or unexpected or wrong:
            raise CheckpointError(
                f"{path.name} does not match this architecture:"
                + _listing("missing keys", missing) + _listing("unexpected keys", unexpected)
                + _listing("shape mismatches", [f"{k}: checkpoint {tuple(state[k].shape)} vs model "
                                                f"{tuple(expected[k].shape)}" for k in wrong]))
        net.load_state_dict(state)
        net.eval()


def _listing(title: str, items: list[str], limit: int = 12) -> str:
    if not items:
        return ""
    more = f" ... and {len(items) - limit} more" if len(items) > limit else ""
    return f"\n  {title} ({len(items)}): " + ", ".join(items[:limit]) + more


CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints"
MANIFEST = CHECKPOINTS / "MANIFEST.json"


def write_shipped(name: str, state: dict, recipe: dict, metrics: dict) -> Path:
    """Write models/checkpoints/<name>.safetensors (float16 parameters; float32 BatchNorm statistics and QAT
    quantization parameters) and its MANIFEST entry (sha256, recipe, measurements, where it was made). The
    float16 file is the definition of the weights: `Shipped` reads it back as float32 on every machine."""
    import json
    import platform
    import time

    from safetensors.torch import save_file

    CHECKPOINTS.mkdir(exist_ok=True)
    tensors = {k: (v.to(torch.float16) if _half(k, v) else v).contiguous() for k, v in state.items()}
    path = CHECKPOINTS / f"{name}.safetensors"
    save_file(tensors, str(path))
    manifest = json.loads(MANIFEST.read_text()) if MANIFEST.is_file() else {}
    manifest[name] = {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                      "recipe": {**recipe, "storage": "float16"}, "metrics": metrics,
                      "made_on": {"cpu": platform.processor() or platform.machine(),
                                  "torch": torch.__version__, "time": time.strftime("%Y-%m-%d")}}
    MANIFEST.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return path


def shipped_state(state: dict) -> dict:
    """`state` as `write_shipped` stores and `Shipped` loads it (float16-rounded parameters)."""
    return {k: v.to(torch.float16).float() if _half(k, v) else v for k, v in state.items()}


def _half(key: str, value) -> bool:
    """Stored in float16: parameters. BatchNorm statistics and a QAT model's learned quantization
    parameters (models.qat) stay float32."""
    from models.qat import is_qparam

    return value.is_floating_point() and "running_" not in key and not is_qparam(key)


@dataclass(frozen=True)
class Shipped:
    """Weights that ship with the suite in models/checkpoints/ (distilled by models.distill, or trained on
    digits by models.training, or made by models.variants; float16 parameters, read back as float32). The
    file must match the sha256 in models/checkpoints/MANIFEST.json:
    these weights are the same on every machine, whatever CPU would have trained them."""

    KIND = "shipped"
    name: str

    def resolve(self) -> tuple[Path, str]:
        import json

        entry = json.loads(MANIFEST.read_text()).get(self.name) if MANIFEST.is_file() else None
        if entry is None:
            maker = "models.training" if self.name.endswith("_digits") else "models.distill"
            raise CheckpointError(f"no shipped weights for {self.name!r} in {MANIFEST}; make them with "
                                  f"`python -m {maker} {self.name.removesuffix('_digits')}`")
        path = CHECKPOINTS / entry["file"]
        if not path.is_file() or file_sha256(str(path)) != entry["sha256"]:
            raise CheckpointError(f"{path} is missing or does not match the sha256 in {MANIFEST.name} "
                                  f"(truncated, edited, or not checked out); restore it with git")
        return path, entry["sha256"]

    def identity(self) -> dict:
        path, sha = self.resolve()
        return {"kind": self.KIND, "file": path.name, "sha256": sha}

    def apply(self, net: nn.Module, arch) -> None:
        import json

        path, _ = self.resolve()
        state = {k: v.float() if v.is_floating_point() else v for k, v in load_state_dict(path).items()}
        structure = json.loads(MANIFEST.read_text())[self.name]["recipe"].get("structure")
        if structure == "pruned":
            from models.variants import fit_shapes

            fit_shapes(net, state)  # channels removed by structured pruning: narrower modules
        elif structure == "qat":  # the float network; the learned quantization is read by models.qat
            from models.qat import is_qparam

            state = {k: v for k, v in state.items() if not is_qparam(k)}
        net.load_state_dict(state)
        net.eval()


@dataclass(frozen=True)
class Trained:
    """Weights the suite trains itself on a labelled task (models.training), from SeededInit(seed)."""

    KIND = "trained"
    task: str = "digits"
    seed: int = 0

    def identity(self) -> dict:
        from models import training

        return {"kind": self.KIND, "task": self.task, **training.identity(self.task),
                "init": SeededInit(self.seed).identity()}

    def apply(self, net: nn.Module, arch) -> None:
        from models import training

        SeededInit(self.seed).apply(net, arch)
        training.train(net, arch, self.task)


@dataclass(frozen=True)
class FactoryWeights:
    """The weights a user's factory (models.model) gives its module: nothing to apply. Subject.identity adds
    their content hash, so golden outputs name it when they change."""

    KIND = "factory"

    def identity(self) -> dict:
        return {"kind": self.KIND}

    def apply(self, net: nn.Module, arch) -> None:
        net.eval()


SOURCES = {cls.KIND: cls for cls in (SeededInit, Checkpoint, Shipped, Trained, FactoryWeights)}


def from_spec(spec: dict):
    """The weights source a JSON spec describes (how child processes receive it)."""
    spec = dict(spec)
    kind = spec.pop("kind", None)
    if kind not in SOURCES:
        raise CheckpointError(f"unknown weights kind {kind!r}; expected one of {', '.join(SOURCES)}")
    return SOURCES[kind](**spec)


def to_spec(source) -> dict:
    from dataclasses import asdict

    return {"kind": source.KIND, **{k: v for k, v in asdict(source).items() if v is not None}}


def classifier_classes(path: str | Path) -> int | None:
    """The class count of a checkpoint: the output width of its last 2-D weight (a linear classifier)."""
    classifier = [v for k, v in load_state_dict(path).items() if k.endswith(".weight") and v.ndim == 2]
    return classifier[-1].shape[0] if classifier else None
