"""Golden outputs: stored PyTorch logits (or a models.model registration's declared outputs, packed per
sample, with their names, kinds and shapes in the manifest) for a fixed input set, one `.npz` plus a
`.json` manifest per model under golden/. Loading checks everything that could make a comparison meaningless and says how
to fix it; saving is atomic and happens only when the user asks for it (--update-golden)."""
from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

UPDATE_HINT = "pytest --update-golden -k {name}"


class GoldenError(RuntimeError):
    pass


@dataclass
class Golden:
    logits: np.ndarray  # packed rows (N, total): the logits of a classifier
    manifest: dict

    @property
    def layout(self) -> list | None:
        """The declared outputs as compare.outputs.Slot, for a models.model registration; None for the zoo."""
        from compare.outputs import Slot

        outputs = self.manifest.get("outputs")
        return [Slot.from_json(o) for o in outputs] if outputs else None


def paths(root: Path, name: str) -> tuple[Path, Path]:
    return root / f"{name}.npz", root / f"{name}.json"


def load(root: Path, name: str, identity: dict, inputs_sha: str, outputs: list[dict] | None = None) -> Golden:
    """The golden logits of `name`, checked against the live model identity and input digest (and, for a
    models.model registration, its declared outputs' names and kinds)."""
    npz, manifest_path = paths(root, name)
    hint = UPDATE_HINT.format(name=name)
    if not npz.is_file() or not manifest_path.is_file():
        raise GoldenError(f"no golden outputs for {name} ({npz.name} / {manifest_path.name} missing in {root}); "
                          f"create them with `{hint}`")
    try:
        manifest = json.loads(manifest_path.read_text())
    except ValueError as exc:
        raise GoldenError(f"{manifest_path} is not valid JSON ({exc}); regenerate with `{hint}`") from None
    data = npz.read_bytes()
    if hashlib.sha256(data).hexdigest() != manifest.get("outputs_sha256"):
        raise GoldenError(f"{npz} does not match the sha256 in its manifest (truncated or edited); "
                          f"restore it from git or regenerate with `{hint}`")
    try:
        with np.load(npz) as f:
            logits = f["logits"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise GoldenError(f"{npz} is unreadable ({exc}); regenerate with `{hint}`") from None
    if manifest.get("identity") != identity:
        raise GoldenError(
            f"golden outputs of {name} were made for another model version:\n  stored: "
            f"{json.dumps(manifest.get('identity'), sort_keys=True)}\n  live:   {json.dumps(identity, sort_keys=True)}\n"
            f"If the model change is intended, regenerate with `{hint}`")
    if manifest.get("inputs_sha256") != inputs_sha:
        raise GoldenError(f"the inputs of {name} no longer match the ones its golden outputs were made from "
                          f"(stored {manifest.get('inputs_sha256')}, live {inputs_sha}): the input recipe or "
                          f"an image library changed. Regenerate with `{hint}` if that is intended")
    if outputs is not None:
        declared = [(o["name"], o["kind"]) for o in outputs]
        stored = [(o["name"], o["kind"]) for o in manifest.get("outputs", [])]
        if declared != stored:
            raise GoldenError(f"the golden outputs of {name} were stored for outputs {stored}, but the model now "
                              f"declares {declared}. If that is intended, regenerate with `{hint}`")
    return Golden(logits, manifest)


def manifest(name: str, identity: dict, inputs_recipe: dict, inputs_sha: str, producer: str) -> dict:
    """What a golden file records besides its logits: the model identity (architecture and weights), the
    input recipe and digest, and the torch version that produced it."""
    return {"model": name, "identity": identity, "inputs": inputs_recipe, "inputs_sha256": inputs_sha,
            "torch": producer}


def save(root: Path, name: str, logits: np.ndarray, manifest: dict) -> Golden:
    """Write logits and manifest atomically (temporary name, then rename)."""
    root.mkdir(parents=True, exist_ok=True)
    npz, manifest_path = paths(root, name)
    tmp_npz = npz.with_suffix(f".tmp{os.getpid()}.npz")
    np.savez_compressed(tmp_npz, logits=np.asarray(logits, np.float32))
    manifest = {**manifest, "outputs_sha256": hashlib.sha256(tmp_npz.read_bytes()).hexdigest(),
                "shape": list(np.shape(logits))}
    tmp_json = manifest_path.with_suffix(f".tmp{os.getpid()}.json")
    tmp_json.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(tmp_npz, npz)
    os.replace(tmp_json, manifest_path)
    return Golden(np.asarray(logits, np.float32), manifest)
