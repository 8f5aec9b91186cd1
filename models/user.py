"""Running a `models.model` registration: calling its factory (with a clear error when it does not give a
usable module), returning its outputs in their declared order, and making its input sets."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.api import Input, ModelSpecError
from models.folder import IMAGE_SUFFIXES
from models.images import STREAM_SEEDS

CALIBRATION_EVERY = 4


class DeclaredOutputs(nn.Module):
    """The user's module, returning a tuple in the declared output order (a dict by name, a tuple or a
    single tensor as is), with an error that says what to fix when the outputs do not match the declaration."""

    def __init__(self, name: str, net: nn.Module, outputs):
        super().__init__()
        self.net = net
        self.model_name = name
        self.names = tuple(o.name for o in outputs)

    def forward(self, *xs):
        x = xs[0]
        y = self.net(*xs)
        if isinstance(y, dict):
            missing = [n for n in self.names if n not in y]
            if missing:
                raise ModelSpecError(f"model {self.model_name!r}: forward returned a dict without {missing} "
                                     f"(keys {sorted(y)}); declared outputs: {list(self.names)}")
            y = tuple(y[n] for n in self.names)
        elif isinstance(y, torch.Tensor):
            y = (y,)
        if not isinstance(y, (tuple, list)) or not all(isinstance(t, torch.Tensor) for t in y):
            raise ModelSpecError(f"model {self.model_name!r}: forward must return a tensor, a tuple of tensors or "
                                 f"a dict of tensors; got {type(y).__name__}")
        if len(y) != len(self.names):
            raise ModelSpecError(f"model {self.model_name!r}: forward returned {len(y)} output(s), declared "
                                 f"{len(self.names)} ({', '.join(self.names)}): declare one Output per returned "
                                 "tensor, in order")
        for name, t in zip(self.names, y):
            if t.ndim == 0 or t.shape[0] != x.shape[0]:
                raise ModelSpecError(f"model {self.model_name!r}: output {name!r} has shape {tuple(t.shape)} for a "
                                     f"batch of {x.shape[0]}: its first dimension must be the batch (per-sample "
                                     "shapes may not depend on the batch or the data)")
        return y[0] if len(y) == 1 else tuple(y)


def call_factory(name: str, user, weights=None) -> nn.Module:
    """The user's module in eval mode, wrapped in DeclaredOutputs, with `weights` applied to it first."""
    try:
        net = user.factory()
    except Exception as exc:
        raise ModelSpecError(f"model {name!r}: its factory {user.factory.__name__}() raised "
                             f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(net, nn.Module):
        raise ModelSpecError(f"model {name!r}: its factory {user.factory.__name__}() must return a torch.nn.Module, "
                             f"got {type(net).__name__}")
    if weights is not None:
        weights.apply(net, None)
    return DeclaredOutputs(name, net, user.outputs).eval()


# --- inputs -------------------------------------------------------------------------------------------------

def _images(files: list[Path], inp: Input) -> np.ndarray:
    """Images resized to cover H x W (bilinear) and centre-cropped, uint8 NHWC."""
    from PIL import Image

    _, h, w = inp.shape
    out = []
    for f in files:
        img = Image.open(f).convert("RGB")
        scale = max(h / img.height, w / img.width)
        img = img.resize((max(w, round(img.width * scale)), max(h, round(img.height * scale))), Image.BILINEAR)
        left, top = (img.width - w) // 2, (img.height - h) // 2
        out.append(np.asarray(img.crop((left, top, left + w, top + h))))
    return np.stack(out)


def _normalize(images: np.ndarray, inp: Input) -> np.ndarray:
    x = images.astype(np.float32) / 255.0
    if inp.shape[0] == 1:
        x = x.mean(axis=-1, keepdims=True)
    mean = np.asarray(inp.mean[:inp.shape[0]], np.float32)
    std = np.asarray(inp.std[:inp.shape[0]], np.float32)
    return np.ascontiguousarray(((x - mean) / std).transpose(0, 3, 1, 2))


def _source_samples(name: str, inp: Input) -> np.ndarray:
    """Every sample of a folder or .npy source, in order, as the network's float32 input."""
    path = inp.path()
    kind = inp.source.split(":", 1)[0]
    if kind == "npy":
        try:
            data = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ModelSpecError(f"model {name!r}: Input.source {path} is not a readable .npy array ({exc})") from None
        if data.ndim != len(inp.shape) + 1 or tuple(data.shape[1:]) != tuple(inp.shape):
            raise ModelSpecError(f"model {name!r}: {path} holds {data.shape}, but Input.shape is {inp.shape}: "
                                 f"it must be (samples, {', '.join(map(str, inp.shape))})")
        return np.ascontiguousarray(data, dtype=np.float32)
    if not inp.is_image:
        raise ModelSpecError(f"model {name!r}: a folder source makes images; Input.shape {inp.shape} is not "
                             "(3, H, W) or (1, H, W)")
    files = sorted(f for f in path.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ModelSpecError(f"model {name!r}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {path}")
    return _normalize(_images(files, inp), inp)


def inputs(name: str, declared, stream: str, count: int) -> np.ndarray:
    """`count` samples of a stream ("parity" or "calibration") of the model's input sources: one input's
    array (N, *shape), or with several inputs their samples packed per sample (pack_inputs)."""
    if isinstance(declared, Input):
        declared = (declared,)
    arrays = [_one_input(name, inp, stream, count, k) for k, inp in enumerate(declared)]
    n = min(len(a) for a in arrays)  # sources of different lengths: the common prefix
    return pack_inputs([a[:n] for a in arrays])


def pack_inputs(arrays: list[np.ndarray]) -> np.ndarray:
    """One input's array as is; several inputs' arrays (sharing N) as (N, total) float32, each flattened per
    sample and concatenated in declaration order (converters.pack, the outputs' packing)."""
    from models.packing import pack

    return arrays[0] if len(arrays) == 1 else pack(arrays)


def _one_input(name: str, inp: Input, stream: str, count: int, k: int) -> np.ndarray:
    if inp.source == "photos":
        from models.images import natural_crops

        _, h, w = inp.shape
        return _normalize(natural_crops(count, h, stream, width=w, variant=k), inp)
    data = _source_samples(name, inp)
    calibration = np.arange(len(data)) % CALIBRATION_EVERY == 0
    chosen = data[calibration if stream == "calibration" else ~calibration][:count]
    if len(chosen) == 0:
        raise ModelSpecError(f"model {name!r}: {inp.source} has no {stream} samples ({len(data)} in all; every "
                             f"{CALIBRATION_EVERY}th is calibration, the rest parity): give at least 2")
    return chosen


def recipe(declared, stream: str, count: int) -> dict:
    """What produced a stream of inputs (golden manifests and cache keys)."""
    if isinstance(declared, Input):
        declared = (declared,)
    if len(declared) > 1:
        return {"inputs": [{"name": inp.name, **_recipe(inp, stream, count, k)} for k, inp in enumerate(declared)],
                "stream": stream, "count": count}
    return _recipe(declared[0], stream, count, 0)


def _recipe(inp: Input, stream: str, count: int, k: int) -> dict:
    out = {"source": inp.as_json()["source"], "shape": list(inp.shape), "mean": list(inp.mean),
           "std": list(inp.std), "stream": stream, "count": count}
    if inp.source == "photos":
        from models.images import PHOTOS

        out.update(photos=list(PHOTOS), seed=STREAM_SEEDS[stream], **({"variant": k} if k else {}))
    else:  # the folder's digest (models.folder, as the accuracy folders are keyed), or the .npy file's bytes
        from models.folder import digest
        from models.weights import file_sha256

        path = inp.path()
        out["digest"] = file_sha256(str(path))[:16] if path.is_file() else digest(str(path))
    return out



def output_layout(subject) -> list[dict]:
    """The declared outputs with the per-sample shapes PyTorch gives them (one forward pass on zeros)."""
    return _layout(subject.model, json.dumps(subject.to_params(), sort_keys=True))


@lru_cache(maxsize=None)
def _layout(model: str, params: str) -> list[dict]:
    from models.subject import Subject

    subject = Subject.from_params(json.loads(params))
    net = subject.build()
    try:
        with torch.inference_mode():
            y = net(*(torch.zeros(shape) for shape in subject.input_shapes(1)))
    except ModelSpecError:
        raise
    except Exception as exc:
        shapes = ", ".join(f"(1, {', '.join(map(str, i.shape))})" for i in subject.user.inputs)
        raise ModelSpecError(f"model {model!r}: forward on its declared input{'s' if len(subject.user.inputs) > 1 else ''} "
                             f"{shapes} raised {type(exc).__name__}: {str(exc).splitlines()[0]}; make "
                             "Input.shape what the model takes (several inputs: in forward's order)") from exc
    y = y if isinstance(y, tuple) else (y,)
    return [{**o.as_json(), "shape": list(t.shape[1:])} for o, t in zip(subject.outputs, y)]
