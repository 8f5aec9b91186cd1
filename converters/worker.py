"""Child-process entry point for one build step: `python -m converters.worker STEP PARAMS_JSON OUT_DIR`.

Run by converters.isolate with OUT_DIR as the working directory (onnx2tf looks for its calibration
sample file there). The step is looked up in the format registry (plug-in files named in the params are
loaded first) and its `build(params, out_dir)` runs.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from converters.isolate import NETWORK_ENV, deny_network, inject_fault


def main(argv: list[str]) -> int:
    from converters import formats

    step_name, params, out_dir = argv[0], json.loads(argv[1]), Path(argv[2])
    print(f"[convsuite] step {step_name} params {json.dumps(params, sort_keys=True)}", flush=True)
    start = time.perf_counter()
    if os.environ.get(NETWORK_ENV):
        deny_network()
    inject_fault(step_name, params.get("subject", {}).get("id", ""))
    for plugin in params.get("plugins", []):
        formats.load_file(plugin)
    formats.step(step_name).build(params, out_dir)
    print(f"[convsuite] step {step_name} finished in {time.perf_counter() - start:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
