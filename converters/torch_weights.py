"""A subject's PyTorch weights as an artifact: built once (shipped, seeded or trained: models.weights) into
safetensors, and loaded back into its network. Kept apart from the format's registration so the cache key of
the weights step covers only this and the models it builds."""
from __future__ import annotations

from pathlib import Path

import numpy as np

WEIGHTS_FILE = "model.safetensors"


def build_weights(params: dict, out_dir: Path) -> None:
    from safetensors.torch import save_file

    from models import Subject

    net = Subject.from_params(params["subject"]).build()
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(out_dir / WEIGHTS_FILE))


def load(subject_params: dict, weights_file: Path):
    """The subject's network with weights from a built artifact (strict: every key must match; a
    structurally pruned variant's narrower tensors narrow their modules first, models.variants.fit_shapes)."""
    from safetensors.torch import load_file

    from models import Subject
    from models.variants import fit_shapes

    net = Subject.from_params(subject_params).network()
    state = load_file(str(weights_file))
    fit_shapes(net, state)
    net.load_state_dict(state)
    return net.eval()


def reference_outputs(net, inputs: np.ndarray, batch: int = 64, shapes=None) -> np.ndarray:
    """Eager PyTorch outputs for a whole input set, in batches (how golden and reference outputs are made):
    logits as (N, classes), several outputs packed per sample (converters.pack). `shapes`: the per-sample
    shapes of several inputs packed per sample (models.user.pack_inputs), None for one input."""
    import torch

    from models.packing import pack, split_inputs

    def run(chunk):
        xs = split_inputs(chunk, shapes)
        return pack(_numpy(net(*(torch.from_numpy(x) for x in xs))))

    with torch.inference_mode():
        return np.concatenate([run(chunk) for chunk in np.array_split(inputs, max(1, -(-len(inputs) // batch)))])


def _numpy(y):
    return [t.numpy() for t in y] if isinstance(y, (tuple, list)) else y.numpy()
