"""The public registration API: any `torch.nn.Module`, its input, its named outputs, its weights.

    from models import Input, Output, model

    @model("my_segmenter", input=Input((3, 256, 320)), outputs=[Output("mask", "dense")])
    def my_segmenter():
        return MySegmenter()          # any nn.Module; forward(x) returns a tensor, a tuple or a dict

Put that in a file of yours and run `pytest --models-from=that_file.py`: the model joins the matrix
(every format and precision), with golden outputs made by `pytest --models-from=that_file.py
--update-golden -k my_segmenter`. The zoo's tables fill the same registry through the same `add`
(`models.register` is the front end for the table grammar, whose Architecture also gives the digits
variants).

A model with several inputs declares them in forward's order, each with its own name, shape and source:

    @model("change_detector", inputs=[Input((3, 128, 128), name="before"), Input((3, 128, 128), name="after")])
    def change_detector():
        return ChangeNet()            # forward(before, after)

Every runtime feeds each input by its name (ONNX input names, TFLite signature inputs), so a converter that
swaps two same-shaped inputs fails parity instead of passing unnoticed.

An output's kind picks its metrics and budgets ([kinds.<kind>.<precision>] in budgets.toml;
`classification` uses the zoo's [parity.<precision>]):

    classification  (N, classes) logits: cosine, SNR, top-1 agreement
    boxes           (N, anchors, 4) decoded x1 y1 x2 y2 boxes: IoU of each box with PyTorch's, over the
                    reference's most confident anchors (from the `scores` output it names), plus SNR
    scores          (N, anchors, classes) class scores, column 0 background: agreement of the
                    detections (anchor, class) scoring >= 0.5 with PyTorch's, plus SNR
    dense           (N, classes, H, W) per-pixel logits: per-pixel arg-max agreement and mIoU against
                    PyTorch's arg-max map, plus SNR
    generic         any tensor: cosine, SNR, max abs error
"""
from __future__ import annotations

import hashlib
import inspect
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

OUTPUT_KINDS = ("classification", "boxes", "scores", "dense", "generic")
INPUT_SOURCES = ("photos", "folder:", "npy:")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class ModelSpecError(ValueError):
    """A registration that cannot work; the message names the model and what to fix."""


@dataclass(frozen=True)
class Input:
    """One input of a model, without the batch dimension: (3, H, W) for an RGB image (H != W is fine), or
    any shape with samples from an .npy file.

    source: "photos"      random crops of the photos shipped inside scikit-image and scikit-learn, resized
                          to H x W ((1, H, W): greyscale), normalized as (x - mean) / std with x in [0, 1]
            "folder:DIR"  every image under DIR (sorted), shorter side resized, centre-cropped to H x W,
                          normalized the same way
            "npy:FILE"    an array (samples, *shape) already preprocessed, used as is
    Of the samples of a folder or an .npy file, every 4th (0, 4, 8, ...) is calibration data for integer
    quantization, the rest parity inputs (at most 32).
    name: the input's name in the exported graphs (a model with several inputs needs distinct names; the
          k-th "photos" input of a model gets its own crops, so same-shaped inputs never see equal data)."""

    shape: tuple[int, ...]
    source: str = "photos"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    name: str = "input"

    @property
    def is_image(self) -> bool:
        return len(self.shape) == 3 and self.shape[0] in (1, 3)

    def batch_shape(self, batch: int = 1) -> tuple[int, ...]:
        return (batch, *self.shape)

    def path(self) -> Path | None:
        if ":" not in self.source:
            return None
        return Path(self.source.split(":", 1)[1]).expanduser().resolve()

    def as_json(self) -> dict:
        return {"shape": list(self.shape), "source": self.source if ":" not in self.source
                else f"{self.source.split(':', 1)[0]}:{self.path()}", "mean": list(self.mean),
                "std": list(self.std), **({"name": self.name} if self.name != "input" else {})}


@dataclass(frozen=True)
class Output:
    """One named output and its kind (OUTPUT_KINDS). A `boxes` output names the `scores` output that ranks
    its anchors (scores=...)."""

    name: str
    kind: str = "generic"
    scores: str = ""

    def as_json(self) -> dict:
        return {"name": self.name, "kind": self.kind, **({"scores": self.scores} if self.scores else {})}


@dataclass(frozen=True)
class UserModel:
    """What a registration holds besides the registry's common fields: the factory and its I/O."""

    factory: Callable
    inputs: tuple[Input, ...]  # in forward's argument order
    outputs: tuple[Output, ...]
    checkpoint: str = ""  # a state_dict file (.pth weights-only, or .safetensors) loaded over the factory's
    origin: str = ""  # the file the registration came from (conversion children load it too)
    labels: str = ""  # a labelled image folder (one sub-folder per class) for the accuracy cases
    extra: dict = field(default_factory=dict)

    @property
    def input(self) -> Input:
        """The first (for most models the only) input."""
        return self.inputs[0]


def _check_input(fail, inp) -> None:
    if not isinstance(inp, Input):
        fail(f"input must be models.Input(shape, ...), got {inp!r}")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", inp.name):
        fail(f"Input.name {inp.name!r} must be an identifier (letters, digits, _): it names a graph input")
    if not inp.shape or not all(isinstance(d, int) and d > 0 for d in inp.shape):
        fail(f"Input.shape must be positive ints without the batch dimension, e.g. (3, 224, 224); got {inp.shape!r}")
    if not inp.source.startswith(INPUT_SOURCES) or inp.source.endswith(":"):
        fail(f"Input.source {inp.source!r} is not one of 'photos', 'folder:DIR', 'npy:FILE'")
    if inp.source == "photos" and not inp.is_image:
        fail(f"Input.source 'photos' makes (3, H, W) or (1, H, W) images; shape {inp.shape} is not one: give "
             "source='npy:FILE' with your own samples")
    if inp.is_image and (len(inp.mean) != inp.shape[0] and len(inp.mean) != 3 or len(inp.mean) != len(inp.std)):
        fail(f"Input.mean / std need one value per channel ({inp.shape[0]}); got {inp.mean} / {inp.std}")
    path = inp.path()
    if path is not None and not path.exists():
        fail(f"Input.source {inp.source!r}: {path} does not exist")


def _check_spec(name: str, inputs: Sequence[Input], outputs: Sequence[Output]) -> None:
    def fail(what: str):
        raise ModelSpecError(f"model {name!r}: {what}")

    if not inputs:
        fail("declare its input: input=models.Input(shape, ...) or inputs=[models.Input(shape, name=...), ...]")
    for inp in inputs:
        _check_input(fail, inp)
    in_names = [i.name for i in inputs]
    if len(set(in_names)) != len(in_names):
        fail(f"input names must be distinct (Input(..., name=...)), got {in_names}")
    if not outputs:
        fail("declare at least one Output(name, kind)")
    both = set(in_names) & {o.name for o in outputs if isinstance(o, Output)}
    if both:
        fail(f"{sorted(both)} names both an input and an output; a graph tensor has one name: rename one")
    names = [o.name for o in outputs]
    if len(set(names)) != len(names):
        fail(f"output names must be unique, got {names}")
    for o in outputs:
        if not isinstance(o, Output):
            fail(f"outputs must be models.Output(name, kind), got {o!r}")
        if o.kind not in OUTPUT_KINDS:
            fail(f"output {o.name!r} has kind {o.kind!r}; known kinds: {', '.join(OUTPUT_KINDS)}")
        if o.kind == "boxes" and o.scores not in names:
            fail(f"boxes output {o.name!r} must name its scores output (Output({o.name!r}, 'boxes', "
                 f"scores='...')), one of {names}")


def model(name: str | None = None, *, input: Input | None = None, inputs: Sequence[Input] = (), outputs: Sequence[Output] = (Output("logits", "classification"),),
          weights: str | None = None, published=None, labels: str | None = None, marks: Sequence[str] = (),
          held_out: str = ""):
    """Register the nn.Module that the decorated factory returns under `name` (default: the function's name).

    weights:   None: the factory's module as it returns it (load or seed inside the factory; the values are
               hashed into the model's identity, so goldens say so if they change); or a state_dict file
               (.pth, loaded weights-only, or .safetensors) loaded over it, strictly.
    published: models.Published(params, macs_m, source): the architecture test runs only where given.
    labels:    a labelled image folder (one sub-folder per class) for accuracy cases; classification only.
    marks:     pytest markers for every case of the model (e.g. "slow").
    input / inputs: one Input, or several (distinct names) in the order forward takes them."""
    from models.registry import Published, add

    if published is not None and not isinstance(published, Published):
        raise ModelSpecError(f"model {name!r}: published must be models.Published(params, macs_m, source)")

    def decorate(factory: Callable):
        key = name or factory.__name__
        outs = tuple(outputs)
        if (input is None) == (not inputs):
            raise ModelSpecError(f"model {key!r}: give input=models.Input(...) or inputs=[...], exactly one of them")
        ins = (input,) if input is not None else tuple(inputs)
        _check_spec(key, ins, outs)
        if labels is not None:
            if len(ins) != 1:
                raise ModelSpecError(f"model {key!r}: labels score a model with one image input")
            if [o.kind for o in outs] != ["classification"]:
                raise ModelSpecError(f"model {key!r}: labels score a single classification output")
            if not Path(labels).expanduser().is_dir():
                raise ModelSpecError(f"model {key!r}: labels folder {labels} does not exist")
        if weights is not None and not Path(weights).expanduser().is_file():
            raise ModelSpecError(f"model {key!r}: weights file {weights} does not exist")
        origin = inspect.getsourcefile(factory) or ""
        user = UserModel(factory, ins, outs, str(Path(weights).expanduser().resolve()) if weights else "",
                         str(Path(origin).resolve()) if origin else "",
                         str(Path(labels).expanduser().resolve()) if labels else "")
        add(key, user=user, published=published, marks=tuple(marks), held_out=held_out)
        return factory

    return decorate


def state_digest(state: dict) -> str:
    """Content hash of a state_dict (names, dtypes, shapes and bytes)."""
    h = hashlib.sha256()
    for k in sorted(state):
        v = state[k].detach().contiguous().cpu()
        h.update(f"{k}:{v.dtype}:{tuple(v.shape)}".encode())
        h.update(v.numpy().tobytes())
    return h.hexdigest()[:16]


def structure_digest(net) -> str:
    """Hash of a module's structure: its repr and its state_dict's names, dtypes and shapes (not values)."""
    text = repr(net) + "".join(f"{k}:{v.dtype}:{tuple(v.shape)}" for k, v in sorted(net.state_dict().items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def seeded_(module, seed: int = 0):
    """Initialize a module's convolutions and linears from numpy's PCG64 (He-normal fan-out / 1/sqrt(fan-in),
    zero biases, BatchNorm at identity): the same values on every CPU, unlike torch's default init, whose
    kernels may differ between CPUs. For the parts of a user model that no checkpoint covers."""
    import numpy as np
    import torch
    from torch import nn

    rng = np.random.Generator(np.random.PCG64(seed))
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels / m.groups
                m.weight.copy_(torch.from_numpy(rng.normal(0, np.sqrt(2 / fan_out), m.weight.shape).astype(np.float32)))
            elif isinstance(m, nn.Linear):
                m.weight.copy_(torch.from_numpy(rng.normal(0, 1 / np.sqrt(m.in_features), m.weight.shape)
                                                .astype(np.float32)))
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.fill_(1.0)
                m.running_mean.zero_()
                m.running_var.fill_(1.0)
            if isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm2d)) and m.bias is not None:
                m.bias.zero_()
    return module
