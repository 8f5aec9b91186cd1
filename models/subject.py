"""A Subject is one model as the matrix sees it: a registered architecture, an optional variant (class
count, input size), a weights source and the data its inputs come from. Its `id` is the case-id prefix.
Subjects travel to child processes as JSON (`to_params` / `from_params`), the only place weights become
JSON."""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import lru_cache

from models.builder import Architecture
from models.registry import get
from models.weights import from_spec, to_spec

POPULATIONS = ("natural", "digits", "user")


@dataclass(frozen=True)
class Subject:
    id: str
    model: str
    num_classes: int | None = None
    input_size: int | None = None
    weights: object = None  # a models.weights source; None -> the registered source
    data: str = "natural"  # "natural" photo crops, "digits", or "folder:<dir>"
    marks: tuple = ()  # pytest markers of this subject's cases beyond its model's (models.variants)
    variant: str = ""  # a variant of a model (models.variants, models.qat): "prune75u", "kd", "qat"
    precisions: tuple = ()  # the precisions its cases run at (a QAT subject's: int8), empty for every one

    @property
    def report_row(self) -> str:
        """The report's matrix row: the architecture, or a variant's own subject id (beside its base)."""
        return self.id if self.variant else self.model

    @classmethod
    def of(cls, model: str, weights=None, **kwargs) -> "Subject":
        return cls(id=kwargs.pop("id", model), model=model, weights=weights, **kwargs)

    @property
    def entry(self):
        return get(self.model)

    @property
    def user(self):
        """The models.api.UserModel of a `models.model` registration, or None for a zoo table."""
        return self.entry.user

    @property
    def outputs(self) -> tuple:
        """The named outputs (models.api.Output) in the order the network returns them."""
        return self.entry.outputs

    def input_shape(self, batch: int = 1) -> tuple[int, ...]:
        """The (first) input's shape with the batch dimension."""
        return self.user.input.batch_shape(batch) if self.user else self.arch().input.shape(batch)

    def input_shapes(self, batch: int = 1) -> list[tuple[int, ...]]:
        """Every input's shape with the batch dimension, in forward's order."""
        return [i.batch_shape(batch) for i in self.user.inputs] if self.user else [self.input_shape(batch)]

    def sample_shapes(self) -> list[tuple[int, ...]]:
        """Every input's per-sample shape (no batch), in forward's order: how packed input rows split."""
        return [tuple(s[1:]) for s in self.input_shapes(1)]

    def input_names(self) -> list[str]:
        """The graph input names, in forward's order (a zoo table's one input: models.api.Input's default name,
        which is converters.onnx_names.INPUT_NAME)."""
        from models.api import Input

        return [i.name for i in self.user.inputs] if self.user else [Input.name]

    @property
    def population(self) -> str:
        """Which inputs the subject runs on: natural images, digits, or a user's folder."""
        return "user" if self.data.startswith("folder:") else self.data

    def arch(self) -> Architecture:
        if self.entry.arch is None:
            raise TypeError(f"model {self.model!r} is a models.model registration, not a table: it has no "
                            "Architecture (use Subject.network(), input_shape(), outputs)")
        arch = self.entry.arch
        if self.num_classes is not None:
            arch = arch.variant(num_classes=self.num_classes)
        if self.input_size is not None:
            arch = arch.variant(input=replace(arch.input, size=self.input_size))
        return arch

    def weights_source(self):
        return self.weights if self.weights is not None else self.entry.weights

    def identity(self) -> dict:
        """Machine-independent description of the network: architecture hash + weights identity. For a
        models.model registration: the module's structure hash, and the weights' content hash."""
        if self.user:
            return _user_identity(self.model, json.dumps(to_spec(self.weights_source()), sort_keys=True))
        return {"model": self.model, "architecture": self.arch().definition_hash(),
                "weights": self.weights_source().identity()}

    def code_digest(self) -> str:
        """Hash of the file a models.model registration came from ("" for the zoo, whose code the suite's own
        code keys cover): part of every cache key of the subject, so an edited forward rebuilds its artifacts
        and PyTorch outputs (the golden identity leaves it out: the drift test says whether outputs changed)."""
        if not self.user or not self.user.origin:
            return ""
        import hashlib
        from pathlib import Path

        return hashlib.sha256(Path(self.user.origin).read_bytes()).hexdigest()[:16]

    def macs(self) -> int:
        """Convolution and linear multiply-accumulates for one input (models.builder.count_macs)."""
        from models.builder import count_macs

        # a variant's own network: structured pruning removed channels
        net = self.build() if self.variant else self.network()
        return count_macs(net, self.input_shapes(1) if self.user else self.arch().input)

    def network(self):
        """The network without the subject's weights applied (a table built, or the user's factory called;
        a factory's own weights are part of what it returns)."""
        if self.user:
            from models.user import call_factory

            return call_factory(self.model, self.user)
        from models.builder import build

        net = build(self.arch())
        if self.variant:
            from models.variants import VARIANTS

            if VARIANTS[self.variant]["kind"] == "qat":  # trained with BatchNorm folded (models.qat)
                from models.qat import folded

                return folded(net)
        return net

    def build(self):
        """The network with its weights applied, in eval mode."""
        if self.user:
            from models.user import call_factory

            return call_factory(self.model, self.user, self.weights_source())
        arch = self.arch()
        net = self.network()
        self.weights_source().apply(net, arch)
        return net.eval()

    def to_params(self) -> dict:
        params = {"id": self.id, "model": self.model, "num_classes": self.num_classes,
                  "input_size": self.input_size, "weights": to_spec(self.weights_source()), "data": self.data,
                  **({"variant": self.variant} if self.variant else {})}
        if self.user:
            params["origin"] = self.user.origin
        return params

    @classmethod
    def from_params(cls, params: dict) -> "Subject":
        """The subject a child process was given (a user's model: its file is loaded first)."""
        from models.registry import is_registered, load_file

        params = dict(params)
        origin = params.pop("origin", "")
        if origin and not is_registered(params["model"]):
            load_file(origin)
        return cls.of(params.pop("model"), from_spec(params.pop("weights")), **params)


@lru_cache(maxsize=None)
def _user_identity(model: str, weights_spec: str) -> dict:
    from models.api import state_digest, structure_digest
    from models.weights import from_spec

    net = Subject.of(model, from_spec(json.loads(weights_spec))).build()
    weights = from_spec(json.loads(weights_spec)).identity()
    return {"model": model, "architecture": structure_digest(net),
            "weights": {**weights, "state_sha256": state_digest(net.state_dict())}}
