"""Every registered model with published figures (every zoo table; a models.model registration where it
gives `published=`) against its parameter count and MAC figure, counted by the suite's convention
(models.builder.count_macs: convolutions and linears)."""
from __future__ import annotations

import pytest

from harness.checks import row_for
from models import count_params


@pytest.mark.architecture
def test_architecture(natural_subject, record_result):
    entry = natural_subject.entry
    if entry.published is None:
        pytest.skip(f"{natural_subject.id}: no published figures registered (models.model(..., published=...))")
    params, macs_m = count_params(natural_subject.network()), round(natural_subject.macs() / 1e6, 1)
    line = (f"{natural_subject.id}: params {params:,} (published {entry.published.params:,}), "
            f"MACs {macs_m} M (reference {entry.published.macs_m} M) - {entry.published.source}"
            + (f"; note: {entry.published.note}" if entry.published.note else ""))
    print(line)
    record_result(row_for(natural_subject, "architecture", line=line))
    assert params == entry.published.params, line
    assert macs_m == entry.published.macs_m, line
