"""Sparsity: every pruned variant (models.variants) x format x precision whose artifact's weights can be read
(Format.weights). Does the conversion keep unstructured pruning's zeros, and structured pruning's removed
channels? The row records the artifact's size beside the unpruned model's of the same format and precision
(the size effect; the latency effect is in the latency pass). compare.sparsity has the rules."""
from __future__ import annotations

import pytest

from compare import sparsity
from compare.verdict import Verdict, decide
from converters import formats, stored_weights
from converters.pipeline import Case
from harness.checks import row_for, settle
from models import variants


@pytest.mark.sparsity
def test_sparsity_survives_conversion(sparsity_case, pipeline, matrix, record_result, conversion):
    case = sparsity_case
    fmt = formats.get(case.format)
    structured = variants.VARIANTS[case.subject.variant]["structured"]
    base = next(s for s in matrix.trained if s.id == variants.base_id())
    base_case = Case(base, case.format, case.precision)
    row = row_for(case, "sparsity")
    with conversion(row):
        stored = sparsity.summary(fmt.weights(pipeline.artifact(case)))
        base_stored = sparsity.summary(fmt.weights(pipeline.artifact(base_case)))
        source = sparsity.summary(stored_weights.torch_weights(pipeline.torch_model(case.subject)))
        source["params_ratio"] = source["weight_elements"] / \
            sparsity.summary(stored_weights.torch_weights(pipeline.torch_model(base)))["weight_elements"]
        row.size_bytes = pipeline.artifact_size(case)
        base_bytes = pipeline.artifact_size(base_case)
    kept, why = sparsity.verdict(structured, source, stored, base_stored)
    row.metrics = {"sparsity": stored["sparsity"], "torch_sparsity": source["sparsity"],
                   "weight_elements": stored["weight_elements"], "base_weight_elements": base_stored["weight_elements"],
                   "torch_params_ratio": source["params_ratio"], "size_ratio": row.size_bytes / base_bytes,
                   "structured": float(structured), "kept": float(kept)}
    row.line = (f"{case.id}: {'kept' if kept else 'LOST'}: {why}; artifact {row.size_bytes / 1e6:.2f} MB, "
                f"{row.size_bytes / base_bytes:.2f}x the unpruned model's")
    record_result(row)
    settle(decide(case.id, [Verdict(case.id, "sparsity", row.metrics, problems=[] if kept else [why])]))
