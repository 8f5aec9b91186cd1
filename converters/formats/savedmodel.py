"""TensorFlow SavedModel: the "TFLite-compatible model format" the FBNet-A seed reports beside PyTorch and
TFLite. onnx2tf writes it in the `tflite` step, before it converts to TFLite; the `savedmodel` step takes it
out of that entry (saved_model.pb, variables/, assets/; not the .tflite files) as hard links, a copy across
filesystems, so the artifact and its size are the SavedModel alone and its bytes are stored once. The runner
is TensorFlow's serving_default signature, eager: inputs by their ONNX names, NHWC for 4-D ones (onnx2tf's
layout), outputs by the signature's output_N (the graph's order)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from converters import stored_weights
from converters.formats import Format, Step, register
from converters.formats import tflite  # noqa: F401  (the tflite step that writes the SavedModel)
from converters.tflite_convert import SAVED_MODEL_DIR

TOOLS = ("tensorflow", "numpy")
ARTIFACT = "saved_model"


def _link_or_copy(src: str, dst: str) -> None:
    """A hard link where the cache is one filesystem: both entries are read-only and checked against their
    manifests, so sharing the bytes is safe, and the float model is not stored twice."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def extract(params: dict, out_dir: Path) -> None:
    source = Path(params["deps"]["tflite"]) / SAVED_MODEL_DIR
    shutil.copytree(source, out_dir / ARTIFACT, ignore=shutil.ignore_patterns("*.tflite"),
                    copy_function=_link_or_copy)
    if not (out_dir / ARTIFACT / "saved_model.pb").is_file():
        raise RuntimeError(f"onnx2tf wrote no saved_model.pb in {source}")


class SavedModelRunner:
    """tf.saved_model.load + the serving_default signature, batch 1. `invoke` is the only timed call.
    optimized=False is not a separate setting here (TensorFlow has no kernel switch to turn off): it runs
    the same way."""

    def __init__(self, path: Path, subject_params: dict | None = None, threads: int = 1, optimized: bool = True):
        import tensorflow as tf

        try:  # settable only before TensorFlow runs its first op in this process
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:
            pass
        self.threads = threads
        self.fn = tf.saved_model.load(str(path)).signatures["serving_default"]
        spec = self.fn.structured_input_signature[1]
        if subject_params is not None:
            from models import Subject

            subject = Subject.from_params(subject_params)
            names = subject.input_names()
            self.shapes = subject.sample_shapes()
        else:
            names, self.shapes = list(spec), None
        missing = [n for n in names if n not in spec]
        if missing:
            raise RuntimeError(f"inputs {missing} are not in the SavedModel's signature {sorted(spec)}")
        self.names = names
        outputs = self.fn.structured_outputs
        self.outputs = sorted(outputs, key=lambda n: int(n.rsplit("_", 1)[1]) if n.rsplit("_", 1)[-1].isdigit() else 0)
        self._feed = self._y = None

    def set_input(self, x: np.ndarray) -> None:
        import tensorflow as tf

        from models.packing import split_inputs

        xs = split_inputs(x, self.shapes)
        self._feed = {n: tf.constant(np.ascontiguousarray(a.transpose(0, 2, 3, 1) if a.ndim == 4 else a,
                                                          dtype=np.float32)) for n, a in zip(self.names, xs)}

    def invoke(self) -> None:
        self._y = self.fn(**self._feed)

    def get_output(self):
        outs = [self._y[n].numpy() for n in self.outputs]
        outs = [y.transpose(0, 3, 1, 2) if y.ndim == 4 else y for y in outs]
        return outs[0] if len(outs) == 1 else outs


EXTRACT = Step("savedmodel", extract, needs=("tflite",), tools=TOOLS)
register(Format("savedmodel", {"fp32": ("savedmodel", ARTIFACT)}, SavedModelRunner, steps=(EXTRACT,),
                requires=("tensorflow",), install_hint="pip install tensorflow (already a dependency of onnx2tf)",
                weights=stored_weights.savedmodel_weights))
