"""A user's labelled images in an ImageNet-style folder: one sub-folder per class.

Labels: if every sub-folder name is an integer it is the class index (so a 1000-class model can be scored
on a few ImageNet classes: folders `281/`, `967/`); otherwise classes are numbered in sorted name order.
Split: in each class, images in sorted file order; every 4th (index 0, 4, 8, ...) is calibration data for
integer quantization, the rest is the test split. Preprocessing follows the model's InputSpec: shorter side
resized to size * 256 / 224 (bilinear), centre crop, normalized with the spec's mean and std.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from models.builder import InputSpec
from models.images import normalize

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
CALIBRATION_EVERY = 4


class FolderError(ValueError):
    pass


def classes(root: Path) -> list[tuple[str, int]]:
    dirs = sorted(p.name for p in Path(root).iterdir() if p.is_dir())
    if not dirs:
        raise FolderError(f"{root} has no class sub-folders; expected one folder of images per class")
    if all(d.isdigit() for d in dirs):
        return [(d, int(d)) for d in dirs]
    return [(d, i) for i, d in enumerate(dirs)]


@lru_cache(maxsize=8)
def _load(root: str, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from PIL import Image

    images, labels, is_calib = [], [], []
    for name, label in classes(Path(root)):
        files = sorted(f for f in (Path(root) / name).iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        for i, f in enumerate(files):
            img = Image.open(f).convert("RGB")
            scale = size * 256 / 224 / min(img.size)
            img = img.resize((max(size, round(img.width * scale)), max(size, round(img.height * scale))),
                             Image.BILINEAR)
            left, top = (img.width - size) // 2, (img.height - size) // 2
            images.append(np.asarray(img.crop((left, top, left + size, top + size))))
            labels.append(label)
            is_calib.append(i % CALIBRATION_EVERY == 0)
    if not images:
        raise FolderError(f"{root}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in its class folders")
    return np.stack(images), np.asarray(labels, np.int64), np.asarray(is_calib)


def split(root: str, spec: InputSpec, name: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels, is_calib = _load(str(Path(root).resolve()), spec.size)
    mask = is_calib if name == "calibration" else ~is_calib
    if not mask.any():
        raise FolderError(f"{root}: the {name} split is empty; put at least 2 images in a class folder")
    return normalize(images[mask], spec), labels[mask]


def digest(root: str) -> str:
    """Content hash of the folder (file names and bytes): part of cache keys for its calibration set."""
    import hashlib

    h = hashlib.sha256()
    for f in sorted(Path(root).rglob("*")):
        if f.is_file():
            h.update(str(f.relative_to(root)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]
