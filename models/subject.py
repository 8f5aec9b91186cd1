"""A Subject is one model as the matrix sees it: a registered architecture, an optional variant (class
count, input size), a weights source and the data its inputs come from. Its `id` is the case-id prefix.
Subjects travel to child processes as JSON (`to_params` / `from_params`), the only place weights become
JSON."""
from __future__ import annotations

from dataclasses import dataclass, replace

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

    @classmethod
    def of(cls, model: str, weights=None, **kwargs) -> "Subject":
        return cls(id=kwargs.pop("id", model), model=model, weights=weights, **kwargs)

    @property
    def entry(self):
        return get(self.model)

    @property
    def population(self) -> str:
        """Which inputs the subject runs on: natural images, digits, or a user's folder."""
        return "user" if self.data.startswith("folder:") else self.data

    def arch(self) -> Architecture:
        arch = self.entry.arch
        if self.num_classes is not None:
            arch = arch.variant(num_classes=self.num_classes)
        if self.input_size is not None:
            arch = arch.variant(input=replace(arch.input, size=self.input_size))
        return arch

    def weights_source(self):
        return self.weights if self.weights is not None else self.entry.weights

    def identity(self) -> dict:
        """Machine-independent description of the network: architecture hash + weights identity."""
        return {"model": self.model, "architecture": self.arch().definition_hash(),
                "weights": self.weights_source().identity()}

    def build(self):
        """The network with its weights applied, in eval mode."""
        from models.builder import build

        arch = self.arch()
        net = build(arch)
        self.weights_source().apply(net, arch)
        return net.eval()

    def to_params(self) -> dict:
        return {"id": self.id, "model": self.model, "num_classes": self.num_classes,
                "input_size": self.input_size, "weights": to_spec(self.weights_source()), "data": self.data}

    @classmethod
    def from_params(cls, params: dict) -> "Subject":
        params = dict(params)
        return cls.of(params.pop("model"), from_spec(params.pop("weights")), **params)
