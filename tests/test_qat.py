"""QAT: every quantization-aware trained variant (models.variants, models.qat) x format x static int8
precision whose artifact's activation scales can be read (Format.scales). Does the path keep the scales the
model learned, or quantize its float weights again? A path with a learned-quantization route
(Format.qat_artifacts: onnx and OpenVINO read the exported QDQ graph) must keep them; one without it
re-quantizes, which is a known failure with its mechanism in known_failures.toml. The accuracy, parity and
latency of the same artifacts are in the accuracy and latency passes (the report's Optimized variants
tables put them beside PTQ of the base model)."""
from __future__ import annotations

import pytest

from compare import qat as rules
from compare.verdict import decide, judge
from converters import formats
from harness.checks import row_for, settle
from models import qat


@pytest.mark.qat
def test_qat_scales_kept(qat_case, pipeline, known_failures, record_result, conversion):
    case = qat_case
    fmt = formats.get(case.format)
    carried = case.precision in fmt.qat_artifacts
    row = row_for(case, "qat")
    with conversion(row):
        stored = fmt.scales(pipeline.artifact(case))
        row.size_bytes = pipeline.artifact_size(case)
    learned = qat.activation_scales(qat.shipped_state(case.subject))
    kept = rules.kept_fraction(learned, stored)
    row.metrics = {"scales_kept": kept, "learned_scales": float(len(learned)), "artifact_scales": float(len(stored)),
                   "carried": float(carried)}
    verdict = judge(case.id, "qat", {"scales_kept": kept}, rules.budget())
    route = "the learned QDQ graph" if carried else "its float weights quantized again by the format's own quantizer"
    row.line = (f"{case.id}: QAT scales {'kept' if verdict.passed else 'RE-QUANTIZED'}: {round(kept * len(learned))} "
                f"of {len(learned)} learned activation scales in the artifact ({len(stored)} scales there); "
                f"path: {route}")
    record_result(row)
    settle(decide(case.id, [verdict], known_failures.lookup(case.id, "qat")))
