"""What starting a build step costs: the same real steps (a digits subject's `onnx`, `onnx_dynamic_int8` and
`onnx_dynamic_int8_reference`, each well under a second of work) run N times forked from the preloaded step
server and N times in a new interpreter (CONVSUITE_STEP_START=spawn), interleaved in one run so both see the
same machine load. Prints the median wall time per step each way and their ratio (converters.isolate). The
`weights` step they start from is built once, untimed: it always gets a new interpreter (its kernel pinning
must precede torch's import).

    python -m benchmarks.step_start [--runs 10] [--subject mobilenet_v3_small_minimal_digits]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

STEPS = ("onnx", "onnx_dynamic_int8", "onnx_dynamic_int8_reference")


def main(argv=None) -> int:
    from converters import formats
    from converters.isolate import START_ENV, run_step
    from models import subjects

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--subject", default="mobilenet_v3_small_minimal_digits")
    args = parser.parse_args(argv)
    subject = next((s for s in subjects.digits() if s.id == args.subject), None)
    if subject is None:
        parser.error(f"--subject {args.subject!r}: not a digits subject ({', '.join(s.id for s in subjects.digits())})")
    times: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="convsuite-step-start-") as tmp:
        root = Path(tmp)
        weights = formats.step("weights")
        run_step("weights", {"subject": subject.to_params(), "deps": {}, "options": {}, "plugins": []},
                 root / "weights", timeout=600, memory_gb=8, env=weights.env, fresh_interpreter=True)
        for run in range(args.runs):
            for mode in (("fork", "spawn") if run % 2 == 0 else ("spawn", "fork")):
                os.environ[START_ENV] = mode
                deps = {"weights": str(root / "weights")}
                for name in STEPS:
                    step = formats.step(name)
                    out = root / f"{mode}-{run}-{name}"
                    params = {"subject": subject.to_params(), "deps": dict(deps), "options": dict(step.options),
                              "plugins": []}
                    start = time.perf_counter()
                    run_step(name, params, out, timeout=600, memory_gb=8, env=step.env,
                             fresh_interpreter=step.fresh_interpreter)
                    times.setdefault((name, mode), []).append(time.perf_counter() - start)
                    deps[name] = str(out)
    print(f"{'step':28s} {'fork s':>8s} {'spawn s':>8s} {'spawn/fork':>11s}   (median of {args.runs}, {subject.id})")
    for name in STEPS:
        fork, spawn = statistics.median(times[(name, "fork")]), statistics.median(times[(name, "spawn")])
        print(f"{name:28s} {fork:8.2f} {spawn:8.2f} {spawn / fork:10.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
