"""Realistic weights for the zoo: every architecture distilled from a real-weight ImageNet teacher.

Seeded weights give nearly tied logits (int8 parity then carries no signal) and homogeneous channels (int8
looks far easier than on trained nets). The recipe, measured on MobileNetV2 against torchvision's real
weights:

1. seeded init (models.weights.SeededInit), then every BatchNorm's affine (gamma, beta) resampled from the
   teacher's BatchNorms of the same role (followed by an activation, or linear) at the nearest relative
   depth: real nets' per-channel ranges differ by 10x and more, which is what makes per-tensor activation
   quantization hard (without it int8 SNR was 32 dB, a real MobileNetV2 measures 10 dB, with it 17 dB);
2. knowledge distillation (Hinton: KL of temperature-softened logits) from the teacher on random-resized
   crops of the shipped photos, students at TRAIN_SIZE, the teacher at its own 224;
3. BatchNorm statistics re-estimated at 224 on the "bn" photo stream;
4. dead channels silenced: where a BN's running variance is below 1e-3 of the layer's median, its gamma
   becomes 0 (the channel then outputs its usual constant). Such a channel, with the random weights after
   it, amplified rare inputs by hundreds of times per layer (FBNet-A gave logits of 3.6e6 on 2 of 64 crops);
   trained nets have dead channels too, with gamma near 0.

Training differs in the last bits between CPUs (oneDNN/MKL kernel choices), so the results are shipped,
not rebuilt: `python -m models.distill` writes models/checkpoints/<model>.safetensors (float16) and their
sha256 and measurements into models/checkpoints/MANIFEST.json; models.weights.Shipped verifies the hash.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

RECIPE = {"version": 2, "teacher": "efficientnet_lite0", "steps": 600, "batch": 16, "train_size": 160,
          "lr": 2e-3, "weight_decay": 1e-4, "temperature": 2.0, "init_seed": 0, "transplant_seed": 1,
          "stream": "distill", "bn_images": 64, "eval_images": 64, "dead_channel_ratio": 1e-3,
          "storage": "float16"}
# Larger students get fewer steps: a ResNet-50 step costs five MobileNet steps on two cores.
STEPS = {"resnet18": 450, "resnet50": 300}


def bn_roles(net):
    """Every BatchNorm in order with its role (True when an activation follows it) and relative depth."""
    from torch import nn

    modules = dict(net.named_modules())
    bns = [(name, m) for name, m in modules.items() if isinstance(m, nn.BatchNorm2d)]
    out = []
    for i, (name, bn) in enumerate(bns):
        parent = modules.get(name.rsplit(".", 1)[0]) if "." in name else None
        act = getattr(parent, "act", None)
        out.append((bn, act is not None and not isinstance(act, nn.Identity), i / max(1, len(bns) - 1)))
    return out


def transplant_bn_affine(student, teacher, seed: int) -> None:
    """Resample each student BN's (gamma, beta) pairs from the teacher BN of the same role nearest in depth."""
    import torch

    rng = np.random.Generator(np.random.PCG64(seed))
    source = bn_roles(teacher)
    with torch.no_grad():
        for bn, has_act, depth in bn_roles(student):
            pool = [s for s in source if s[1] == has_act] or source
            donor = min(pool, key=lambda s: abs(s[2] - depth))[0]
            idx = torch.from_numpy(rng.integers(0, donor.num_features, bn.num_features))
            bn.weight.copy_(donor.weight[idx])
            bn.bias.copy_(donor.bias[idx])


def silence_dead_channels(net, ratio: float = RECIPE["dead_channel_ratio"]) -> int:
    """Set gamma to 0 where a BN's running variance is below `ratio` of its layer's median; returns how many."""
    import torch
    from torch import nn

    silenced = 0
    with torch.no_grad():
        for bn in (m for m in net.modules() if isinstance(m, nn.BatchNorm2d)):
            dead = bn.running_var < ratio * bn.running_var.median()
            bn.weight[dead] = 0.0
            silenced += int(dead.sum())
    return silenced


def _crops(count: int, size: int) -> np.ndarray:
    from models import images

    return images.natural_crops(count, size, RECIPE["stream"])


def teacher_logits(teacher, spec, count: int, work: Path) -> np.ndarray:
    """The teacher's logits on the training crops at 224, computed once and kept in `work`."""
    import torch

    from models import images

    path = work / f"teacher-{RECIPE['teacher']}-{RECIPE['stream']}-{count}.npy"
    if path.is_file():
        return np.load(path)
    crops, out = _crops(count, 224), []
    with torch.inference_mode():
        for chunk in np.array_split(crops, max(1, count // 64)):
            out.append(teacher(torch.from_numpy(images.normalize(chunk, spec))).numpy())
    logits = np.concatenate(out).astype(np.float32)
    work.mkdir(parents=True, exist_ok=True)
    np.save(path, logits)
    return logits


def measure(student, teacher, student_spec, teacher_spec) -> dict:
    """Teacher agreement and logit structure at 224 on the parity stream (the inputs golden files use)."""
    import torch

    from models import images

    crops = images.natural_crops(RECIPE["eval_images"], 224, "parity")
    with torch.inference_mode():
        s = student(torch.from_numpy(images.normalize(crops, student_spec))).numpy().astype(np.float64)
        t = teacher(torch.from_numpy(images.normalize(crops, teacher_spec))).numpy().astype(np.float64)
    top5 = np.argsort(-t, axis=1)[:, :5]
    cos = np.sum(s * t, 1) / (np.linalg.norm(s, axis=1) * np.linalg.norm(t, axis=1))
    ranked = np.sort(s, axis=1)
    mean = s.mean(0, keepdims=True)
    mean_cos = np.sum(s * mean, 1) / (np.linalg.norm(s, axis=1) * np.linalg.norm(mean))
    return {"teacher_top1_agreement": float(np.mean(s.argmax(1) == t.argmax(1))),
            "in_teacher_top5": float(np.mean([a in row for a, row in zip(s.argmax(1), top5)])),
            "cosine_to_teacher": float(cos.mean()),
            "median_top1_top2_margin": float(np.median(ranked[:, -1] - ranked[:, -2])),
            "logit_std": float(s.std()),
            "input_independent_cosine": float(mean_cos.mean())}


def distill(name: str, work: Path, log=print):
    """Distil registered architecture `name` from the teacher; returns (state_dict, metrics)."""
    import torch
    import torch.nn.functional as F

    from models import Subject, images
    from models.builder import build
    from models.registry import get
    from models.weights import SeededInit, calibrate_batchnorm

    steps, batch, size = STEPS.get(name, RECIPE["steps"]), RECIPE["batch"], RECIPE["train_size"]
    teacher_subject = Subject.of(RECIPE["teacher"])
    teacher, teacher_spec = teacher_subject.build(), teacher_subject.arch().input
    arch = get(name).arch
    student = build(arch)
    SeededInit(seed=RECIPE["init_seed"]).apply(student, arch)
    transplant_bn_affine(student, teacher, RECIPE["transplant_seed"])
    calibrate_batchnorm(student, images.image_set("bn", RECIPE["bn_images"], arch.input))
    before = measure(student, teacher, arch.input, teacher_spec)

    count = steps * batch
    targets = torch.from_numpy(teacher_logits(teacher, teacher_spec, count, work))
    inputs = images.normalize(_crops(count, size), arch.input)
    torch.manual_seed(RECIPE["init_seed"])  # dropout masks
    opt = torch.optim.AdamW(student.parameters(), lr=RECIPE["lr"], weight_decay=RECIPE["weight_decay"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=RECIPE["lr"], total_steps=steps, pct_start=0.1)
    temp, start = RECIPE["temperature"], time.perf_counter()
    student.train()
    for step in range(steps):
        sl = slice(step * batch, (step + 1) * batch)
        logits = student(torch.from_numpy(inputs[sl]))
        loss = F.kl_div(F.log_softmax(logits / temp, 1), F.log_softmax(targets[sl] / temp, 1), log_target=True,
                        reduction="batchmean") * temp * temp
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % 50 == 0:
            log(f"[distill] {name} step {step + 1}/{steps} loss {loss.item():.3f} "
                f"{time.perf_counter() - start:.0f} s")
    calibrate_batchnorm(student, images.image_set("bn", RECIPE["bn_images"], arch.input))
    silenced = silence_dead_channels(student)
    metrics = {"before": before, "after": measure(student, teacher, arch.input, teacher_spec),
               "steps": steps, "seconds": round(time.perf_counter() - start, 1), "silenced_channels": silenced}
    return student.state_dict(), metrics


def save(name: str, state: dict, metrics: dict) -> None:
    """Write <name>.safetensors (float16 parameters, float32 BN statistics) and its MANIFEST entry."""
    from models.weights import write_shipped

    write_shipped(name, state, {**RECIPE, "steps": metrics["steps"]}, metrics)


def main(argv=None) -> int:
    import torch

    from models.registry import names

    parser = argparse.ArgumentParser(description="distil zoo architectures from the real-weight teacher and "
                                                 "write models/checkpoints/ (see the module docstring)")
    parser.add_argument("models", nargs="+", help="registered architectures to distil")
    parser.add_argument("--work", type=Path, default=Path(".convsuite-cache") / "distill",
                        help="where the teacher's logits are kept between runs")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    unknown = sorted(set(args.models) - set(names()))
    if unknown:
        parser.error(f"unknown models {unknown}; registered: {', '.join(names())}")
    torch.set_num_threads(args.threads)
    for name in args.models:
        state, metrics = distill(name, args.work, log=lambda line: print(line, flush=True))
        save(name, state, metrics)
        print(f"[distill] {name}: {json.dumps(metrics['after'])} in {metrics['seconds']} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
