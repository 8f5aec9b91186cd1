"""Deterministic training on a labelled task (digits): how `models.weights.Trained` fills a network. It runs
inside the cached, isolated `weights` build step.

Fixed recipe: AdamW, one-cycle schedule, random +-2 px shifts drawn from PCG64, one thread, deterministic
algorithms. After training, BatchNorm running statistics are re-estimated on the training set: MobileNetV3's
small BN momentum (0.01) otherwise leaves them far from the final weights' statistics and eval accuracy falls
to chance.

The same recipe gives different weights on different CPUs when the kernels follow the CPU: oneDNN picks
kernels per instruction set, MKL its code path, ATen its vector width. The build step pins all three to
AVX2 (DETERMINISTIC_ENV, set before torch is imported), so on one machine the weights are the same whatever
ONEDNN_MAX_CPU_ISA or ATEN_CPU_CAPABILITY say. Across CPU vendors they still differ (measured: this AMD EPYC
and an Intel Sapphire Rapids give different weights under the same AVX2 pinning; so does an emulated Intel
Haswell with oneDNN and NNPACK off altogether, at 5-10x the training time), which is why budgets are
derived over weight sets trained with different kernels (scripts/derive_budgets.py).
"""
from __future__ import annotations

import os
import time

import numpy as np

RECIPE = {"epochs": 12, "batch": 64, "lr": 3e-3, "weight_decay": 1e-4, "shift": 2, "seed": 0, "version": 3}
DETERMINISTIC_ENV = {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2", "ATEN_CPU_CAPABILITY": "avx2",
                     "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
TASKS = ("digits",)
# Measurement only (scripts/derive_budgets.py): "native" trains with whatever kernels the CPU and oneDNN's
# ONEDNN_MAX_CPU_ISA pick, to sample the weight sets other CPUs produce. Never set it in CI.
KERNELS_ENV = "CONVSUITE_TRAINING_KERNELS"


def pinned() -> bool:
    return os.environ.get(KERNELS_ENV, "pinned") != "native"


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


def train(net, arch, task: str = "digits", recipe: dict = RECIPE, log=print) -> dict:
    """Train `net` (already initialized) in place on `task`; returns its metrics."""
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
            loss = torch.nn.functional.cross_entropy(net(xb), torch.from_numpy(y_train[idx]))
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
