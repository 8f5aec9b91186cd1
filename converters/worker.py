"""Child-process entry point for one build step: `python -m converters.worker STEP PARAMS_JSON OUT_DIR`.

Run by converters.isolate with OUT_DIR as the working directory (onnx2tf looks for its calibration
sample file there). Each step is a `build(params, out_dir)` function of a format module.
"""
from __future__ import annotations

import importlib
import json
import os
import sys
import time
from pathlib import Path

from converters.isolate import NETWORK_ENV, deny_network, inject_fault

STEPS = {
    "weights": "converters.pytorch:build",
    "onnx": "converters.onnxrt:export",
    "onnx_int8": "converters.onnxrt:quantize_static",
    "onnx_dynamic_int8": "converters.onnxrt:quantize_dynamic",
    "tflite": "converters.tflite:build",
    "train_digits": "models.training:build",
}


def main(argv: list[str]) -> int:
    step, params, out_dir = argv[0], json.loads(argv[1]), Path(argv[2])
    module_name, func = STEPS[step].split(":")
    print(f"[convsuite] step {step} params {json.dumps(params, sort_keys=True)}", flush=True)
    start = time.perf_counter()
    if os.environ.get(NETWORK_ENV):
        deny_network()
    inject_fault(step, params.get("subject", {}).get("id", ""))
    getattr(importlib.import_module(module_name), func)(params, out_dir)
    print(f"[convsuite] step {step} finished in {time.perf_counter() - start:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
