"""Architectures, weights and input specs. Imports nothing from `converters`.

`model` registers any nn.Module with its Input and named Outputs (models.api: the public API, what
`pytest --models-from=FILE` files use); `names()` lists the registry; `Subject.of(name).build()` returns a ready PyTorch network and
`Subject.identity()` the description that cache keys and golden manifests are made from.
"""
from __future__ import annotations

from models.api import Input, ModelSpecError, Output, model, seeded_
from models.builder import Architecture, InputSpec, build, count_macs, count_params
from models.registry import ModelEntry, Published, get, load_file, names, register
from models.subject import Subject

__all__ = ["Architecture", "Input", "InputSpec", "ModelEntry", "ModelSpecError", "Output", "Published", "Subject",
           "build", "count_macs", "count_params", "get", "load_file", "model", "names", "register", "seeded_"]
