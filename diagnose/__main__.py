"""Diagnose matrix cases from the command line: `python -m diagnose CASE_ID [CASE_ID ...]`.

Builds (or reuses, from the artifact cache) the case's artifact, localizes its error layer by layer
(diagnose.onnx_layers) and prints the layers that add the most error, named by PyTorch module; `--mitigate`
also measures the onnxruntime quantization levers against the case's budget (diagnose.mitigate), `--reduce
DIR` writes a repro of the smallest sub-network that still shows the error (diagnose.reduce); `--json FILE`
writes everything. The same diagnosis a run records with `--diagnose` (`--diagnose=mitigate`)."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _subject(subject_id: str):
    from models import subjects

    found = {s.id: s for s in subjects.natural() + subjects.digits()}
    if subject_id not in found:
        raise SystemExit(f"no model {subject_id!r}; known: {', '.join(sorted(found))}")
    return found[subject_id]


def _ini_models() -> list[str]:
    """The project's `convsuite_models` ini entries (pyproject.toml), relative to the project."""
    import tomllib

    from harness.options import ROOT

    ini = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    return [str(ROOT / p) for p in ini.get("convsuite_models", [])]


def _expected(pipeline, case):
    """The outputs the case is judged against and its budget: golden outputs with the parity budget, or for
    a digits model PyTorch's outputs with the trained budget (as the matrix judges them)."""
    from compare import golden
    from compare.budgets import Budgets
    from harness.options import ROOT
    from models import datasets
    from models.images import array_digest

    x = datasets.parity_inputs(case.subject)
    budgets = Budgets.load(ROOT / "budgets.toml")
    if case.subject.data == "digits":
        return pipeline.reference_outputs(case.subject, x), budgets.for_case("trained", case.id, case.precision)
    declared = None
    if case.subject.user:
        from models.user import output_layout

        declared = output_layout(case.subject)
    stored = golden.load(ROOT / "golden", case.subject.id, case.subject.identity(), array_digest(x), declared)
    return stored.logits, budgets.for_case("parity", case.id, case.precision)


def main(argv=None) -> int:
    from compare.cases import CaseId
    from converters.cache import ArtifactCache
    from converters.pipeline import Case, Pipeline
    from diagnose import for_case, mitigations
    from harness.options import ENV_CACHE, ROOT
    from models import datasets

    parser = argparse.ArgumentParser(prog="python -m diagnose", description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="+", help="case ids, e.g. mobilenet_v3_large-onnx-int8")
    parser.add_argument("--cache", default=os.environ.get(ENV_CACHE, str(ROOT / ".convsuite-cache")),
                        help=f"artifact cache (default ${ENV_CACHE} or .convsuite-cache/)")
    parser.add_argument("--layers", type=int, default=10, help="how many of the worst layers to print")
    parser.add_argument("--mitigate", action="store_true",
                        help="measure the quantization levers too (onnxruntime int8 and dynamic_int8, TFLite int8 "
                             "and full_int8)")
    parser.add_argument("--reduce", type=Path, metavar="DIR",
                        help="reduce each quantized case (onnxruntime int8/dynamic_int8, TFLite) to the smallest "
                             "sub-network that still shows its error and write a repro directory under DIR/<case>/")
    parser.add_argument("--json", type=Path, help="write the diagnoses to this file")
    parser.add_argument("--models-from", action="append", default=[], metavar="FILE",
                        help="load models.model registrations first (as pytest --models-from; the project's "
                             "convsuite_models ini entries, the examples, are loaded too)")
    args = parser.parse_args(argv)
    from models.registry import RegistryError, load_file

    try:
        for spec in _ini_models() + args.models_from:
            load_file(spec)
    except RegistryError as exc:
        parser.error(str(exc))
    pipeline = Pipeline(ArtifactCache(args.cache))
    found = {}
    for text in args.cases:
        try:
            cid = CaseId.parse(text)
        except ValueError as exc:
            parser.error(str(exc))
        case = Case(_subject(cid.subject), cid.format, cid.precision)
        d = found[text] = for_case(pipeline, case, datasets.parity_inputs(case.subject))
        if "layers" not in d:
            print(f"{text}: {d.get('unsupported') or d.get('error')}")
            continue
        print(f"{text}: first divergent layer {d['first_divergent_layer']}, worst local layer "
              f"{d['worst_local_layer']}; final {d['final_snr_db'] if d['final_snr_db'] is None else round(d['final_snr_db'], 1)} dB SNR vs PyTorch over {d['samples']} "
              f"inputs; {d['matched']} modules matched, {len(d['unmatched'])} not; read-out perturbation "
              f"{d['perturbation_snr_db']:.1f} dB")
        # local SNR (onnxruntime), or for TFLite the cumulative SNR each layer loses (drop_db)
        key, sign = ("local_snr_db", 1) if d["toolchain"] == "onnxruntime" else ("drop_db", -1)
        ranked = sorted((x for x in d["layers"] if x.get(key) is not None), key=lambda x: sign * x[key])
        worst = ranked[:args.layers]
        for layer in d["layers"]:
            if layer in worst:
                cumulative = layer["cumulative_snr_db"]
                print(f"  {layer['module']:<40} {layer['op']:<18} {key.removesuffix('_db').replace('_', ' ')} "
                      f"{layer[key]:7.1f} dB   cumulative {cumulative if cumulative is not None else float('nan'):7.1f} dB")
        if args.mitigate and (case.precision in ("int8", "dynamic_int8") if case.format == "onnx"
                              else case.precision in ("int8", "full_int8")):
            expected, budget = _expected(pipeline, case)
            d["mitigations"] = mitigations(pipeline, case, datasets.parity_inputs(case.subject), expected, budget, d)
            print(f"  {'lever':<58} {'SNR dB':>7} {'cos':>7} {'top-1':>6} {'verdict':>7} {'size MB':>8} {'latency':>8}")
            for m in d["mitigations"]:
                print(f"  {m['lever'][:58]:<58} {m['metrics'].get('snr_db', float('nan')):7.2f} "
                      f"{m['metrics'].get('cosine_mean', float('nan')):7.4f} {m['metrics'].get('top1_agreement', float('nan')):6.3f} "
                      f"{'pass' if m['passed'] else 'FAIL':>7} {m['size_bytes'] / 1e6:8.2f} {m['latency_ratio']:7.2f}x")
        if args.reduce and (case.precision in ("int8", "dynamic_int8") if case.format == "onnx"
                            else case.precision not in ("fp32",)):
            from diagnose.reduce import reduce_case, reduce_tflite_case

            reduce = reduce_case if case.format == "onnx" else reduce_tflite_case
            d["reduction"] = reduce(pipeline, case, d, args.reduce / text)
            for tried in d["reduction"]["tried"]:
                print(f"  reduce to {tried['module']}: " + (tried.get("skipped") or
                      f"{tried['snr_alone_db']:.1f} dB alone ({tried['nodes']} nodes, float {tried['float_snr_db']:.1f} dB)"
                      + (f", {tried['local_snr_in_model_db']:.1f} dB local in the model"
                         if tried.get("local_snr_in_model_db") is not None else "")))
            print(f"  repro: {d['reduction'].get('repro') or 'no sub-network reproduces the error alone'}")
    if args.json:
        args.json.write_text(json.dumps(found, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
