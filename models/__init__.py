"""Architectures, weights and input specs. Imports nothing from `converters`.

`names()` lists the registry; `Subject.of(name).build()` returns a ready PyTorch network and
`Subject.identity()` the description that cache keys and golden manifests are made from.
"""
from __future__ import annotations

from models.builder import Architecture, InputSpec, build, count_macs, count_params
from models.registry import ModelEntry, Published, get, names, register
from models.subject import Subject

__all__ = ["Architecture", "InputSpec", "ModelEntry", "Published", "Subject", "build", "count_macs",
           "count_params", "get", "names", "register"]
