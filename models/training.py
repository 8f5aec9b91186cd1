"""Deterministic training on a labelled task (digits): the recipe behind the shipped `<model>_digits`
weights (models/checkpoints/, written by `python -m models.training`) and the `weights` build step when a
measurement asks for freshly trained weights (CONVSUITE_DIGITS_WEIGHTS).

Fixed recipe: AdamW, one-cycle schedule, random +-2 px shifts drawn from PCG64, one thread, deterministic
algorithms. After training, BatchNorm running statistics are re-estimated on the training set: MobileNetV3's
small BN momentum (0.01) otherwise leaves them far from the final weights' statistics and eval accuracy falls
to chance.

The same recipe gives different weights on different CPUs when the kernels follow the CPU: oneDNN picks
kernels per instruction set (and blocks by cache size), MKL its code path, ATen its vector width. Training
pins all three to AVX2 (DETERMINISTIC_ENV, set before torch is imported), so on one machine the weights are
the same whatever ONEDNN_MAX_CPU_ISA or ATEN_CPU_CAPABILITY say; two AMD EPYC machines (AVX2, AVX-512 VNNI)
gave bit-identical weights. Across CPU vendors they still differ (an Intel Sapphire Rapids under the same
pinning; an emulated Intel Haswell with oneDNN and NNPACK off, at 5-10x the training time). So the weights
the matrix judges are the shipped float16 files, the same bytes on every machine; training is how they are
made, and how budget measurements sample the weight sets other CPUs would give:

    CONVSUITE_DIGITS_WEIGHTS=shipped       (default) models/checkpoints/<model>_digits.safetensors
    CONVSUITE_DIGITS_WEIGHTS=train         trained in the weights build step, kernels pinned
    CONVSUITE_DIGITS_WEIGHTS=train-native  trained with whatever kernels the CPU and ONEDNN_MAX_CPU_ISA pick
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

RECIPE = {"epochs": 12, "batch": 64, "lr": 3e-3, "weight_decay": 1e-4, "shift": 2, "seed": 0, "version": 3}
DETERMINISTIC_ENV = {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2", "ATEN_CPU_CAPABILITY": "avx2",
                     "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
TASKS = ("digits",)
# Where the digits weights come from (module docstring). The train modes are for measurements
# (scripts/derive_budgets.py) and for checking the recipe; never set them in CI.
WEIGHTS_ENV = "CONVSUITE_DIGITS_WEIGHTS"
WEIGHTS_MODES = ("shipped", "train", "train-native")


def weights_mode() -> str:
    mode = os.environ.get(WEIGHTS_ENV, "shipped")
    if mode not in WEIGHTS_MODES:
        raise ValueError(f"{WEIGHTS_ENV}={mode!r}: expected one of {', '.join(WEIGHTS_MODES)}")
    return mode


def pinned() -> bool:
    return weights_mode() != "train-native"


def identity(task: str) -> dict:
    from models import digits

    if task not in TASKS:
        raise ValueError(f"unknown training task {task!r}; known: {', '.join(TASKS)}")
    kernels = DETERMINISTIC_ENV if pinned() else f"native ({os.environ.get('ONEDNN_MAX_CPU_ISA', 'any')} ISA)"
    return {"recipe": RECIPE, "split": [digits.SPLIT_SEED, digits.SPLITS], "kernels": kernels}


def _shifted(x: np.ndarray, rng: np.random.Generator, shift: int) -> np.ndarray:
    """Random translation by up to `shift` pixels (edge-padded), one offset per image."""
    n, _, h, w = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (shift, shift), (shift, shift)), mode="edge")
    dy, dx = rng.integers(0, 2 * shift + 1, size=(2, n))
    return np.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])


def train(net, arch, task: str = "digits", recipe: dict = RECIPE, log=print, loss_fn=None) -> dict:
    """Train `net` (already initialized) in place on `task`; returns its metrics. `loss_fn(logits, x, y)`
    replaces cross-entropy (models.variants distils with it)."""
    import torch

    from models import digits
    from models.weights import calibrate_batchnorm

    identity(task)
    torch.set_num_threads(1)
    torch.manual_seed(recipe["seed"])  # dropout masks
    torch.use_deterministic_algorithms(True)
    x_train, y_train = digits.split(arch.input, "train")
    rng = np.random.Generator(np.random.PCG64(recipe["seed"]))
    steps = recipe["epochs"] * int(np.ceil(len(x_train) / recipe["batch"]))
    opt = torch.optim.AdamW(net.parameters(), lr=recipe["lr"], weight_decay=recipe["weight_decay"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe["lr"], total_steps=steps, pct_start=0.2)
    start = time.perf_counter()
    net.train()
    for epoch in range(recipe["epochs"]):
        order = rng.permutation(len(x_train))
        for i in range(0, len(order), recipe["batch"]):
            idx = order[i:i + recipe["batch"]]
            xb = torch.from_numpy(_shifted(x_train[idx], rng, recipe["shift"]))
            yb = torch.from_numpy(y_train[idx])
            logits = net(xb)
            loss = loss_fn(logits, xb, yb) if loss_fn else torch.nn.functional.cross_entropy(logits, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        log(f"[convsuite] training epoch {epoch + 1}/{recipe['epochs']}: loss {loss.item():.3f}, "
            f"{time.perf_counter() - start:.0f} s")
    calibrate_batchnorm(net, x_train)
    x_test, y_test = digits.split(arch.input, "test")
    with torch.inference_mode():
        accuracy = float((net(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean() * 100)
    net.eval()
    log(f"[convsuite] trained: test accuracy {accuracy:.2f} % in {time.perf_counter() - start:.0f} s")
    return {"test_accuracy": accuracy, "seconds": time.perf_counter() - start}


def main(argv=None) -> int:
    """Train `<model>_digits` with the pinned kernels and ship it (models/checkpoints/, float16)."""
    from models.registry import get, names

    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="python -m models.training",
        description="train zoo architectures on digits with the fixed recipe and pinned kernels, and write "
                    "models/checkpoints/<model>_digits.safetensors (float16) with its MANIFEST entry")
    parser.add_argument("models", nargs="*", help="architectures to train (default: every zoo architecture "
                                                  "that is not held out)")
    args = parser.parse_args(argv)
    todo = args.models or [n for n in names() if not get(n).held_out]
    unknown = sorted(set(todo) - set(names()))
    if unknown:
        parser.error(f"unknown models {unknown}; registered: {', '.join(names())}")
    if any(os.environ.get(k) != v for k, v in DETERMINISTIC_ENV.items()):
        # the kernel pins only take effect before torch is loaded: start again with them set
        os.execve(sys.executable, [sys.executable, "-m", "models.training", *todo],
                  {**os.environ, **DETERMINISTIC_ENV})
    import hashlib

    import torch
    from safetensors.torch import save

    from models import digits
    from models.subject import Subject
    from models.weights import SeededInit, shipped_state, write_shipped

    for name in todo:
        subject = Subject.of(name, SeededInit(0), id=f"{name}_digits", num_classes=10, input_size=digits.SIZE,
                             data="digits")
        net = subject.build()
        arch = subject.arch()
        metrics = train(net, arch, "digits", log=lambda line: print(line, flush=True))
        state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        # the hash the matrix records for weights it trains itself (converters.torch_weights.build_weights)
        trained = hashlib.sha256(save({k: v.contiguous() for k, v in state.items()})).hexdigest()
        net.load_state_dict(shipped_state(state))
        x_test, y_test = digits.split(arch.input, "test")
        with torch.inference_mode():
            shipped = float((net(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean() * 100)
        metrics = {"test_accuracy_float32": metrics["test_accuracy"], "test_accuracy": shipped,
                   "seconds": round(metrics["seconds"], 1), "trained_float32_sha256": trained}
        path = write_shipped(f"{name}_digits", state, {**RECIPE, "task": "digits", "kernels": DETERMINISTIC_ENV,
                                                      "init": SeededInit(0).identity()}, metrics)
        print(f"[training] {name}_digits: {shipped:.2f} % shipped (float32 {metrics['test_accuracy_float32']:.2f}"
              f" %) -> {path}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
