"""Deterministic training of a subject on digits (the `train_digits` build step, run isolated and cached).

Fixed recipe: seeded init (models.weights.SeededInit), AdamW, cosine schedule, random +-2 px shifts drawn
from PCG64, one thread, deterministic algorithms. After training, BatchNorm running statistics are
re-estimated on the training set: MobileNetV3's small BN momentum (0.01) otherwise leaves them far from
the final weights' statistics and eval accuracy falls to chance.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

RECIPE = {"epochs": 12, "batch": 64, "lr": 3e-3, "weight_decay": 1e-4, "shift": 2, "seed": 0, "version": 1}
TRAINED_FILE = "trained.safetensors"
METRICS_FILE = "training.json"


def _shifted(x: np.ndarray, rng: np.random.Generator, shift: int) -> np.ndarray:
    """Random translation by up to `shift` pixels (zero-padded), one offset per image."""
    n, _, h, w = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (shift, shift), (shift, shift)), mode="edge")
    dy, dx = rng.integers(0, 2 * shift + 1, size=(2, n))
    return np.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])


def train(subject, recipe: dict = RECIPE):
    """Train `subject` (a digits Subject with seeded init) and return (net, metrics)."""
    import torch

    from models import digits
    from models.weights import calibrate_batchnorm

    torch.set_num_threads(1)
    torch.manual_seed(recipe["seed"])  # dropout masks
    torch.use_deterministic_algorithms(True)
    spec = subject.arch().input
    net = subject.build()
    x_train, y_train = digits.split(spec, "train")
    rng = np.random.Generator(np.random.PCG64(recipe["seed"]))
    steps = recipe["epochs"] * int(np.ceil(len(x_train) / recipe["batch"]))
    opt = torch.optim.AdamW(net.parameters(), lr=recipe["lr"], weight_decay=recipe["weight_decay"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe["lr"], total_steps=steps, pct_start=0.2)
    start = time.perf_counter()
    net.train()
    for _ in range(recipe["epochs"]):
        order = rng.permutation(len(x_train))
        for i in range(0, len(order), recipe["batch"]):
            idx = order[i:i + recipe["batch"]]
            xb = torch.from_numpy(_shifted(x_train[idx], rng, recipe["shift"]))
            loss = torch.nn.functional.cross_entropy(net(xb), torch.from_numpy(y_train[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    calibrate_batchnorm(net, x_train)
    x_test, y_test = digits.split(spec, "test")
    with torch.inference_mode():
        accuracy = float((net(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean() * 100)
    return net, {"test_accuracy": accuracy, "seconds": time.perf_counter() - start, "recipe": recipe}


def build(params: dict, out_dir: Path) -> None:
    from safetensors.torch import save_file

    from models import Subject

    net, metrics = train(Subject.from_params(params["subject"]), params.get("recipe", RECIPE))
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(out_dir / TRAINED_FILE))
    (out_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=1))
    print(f"[convsuite] trained: test accuracy {metrics['test_accuracy']:.2f} % in {metrics['seconds']:.0f} s")
