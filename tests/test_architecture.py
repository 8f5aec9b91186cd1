"""Every registered table against its published parameter count and MAC figure."""
from __future__ import annotations

import pytest

from harness.checks import row_for
from models import build, count_macs, count_params


@pytest.mark.architecture
def test_architecture(natural_subject, record_result):
    entry, arch = natural_subject.entry, natural_subject.entry.arch
    net = build(arch)
    params, macs_m = count_params(net), round(count_macs(net, arch.input) / 1e6, 1)
    line = (f"{natural_subject.id}: params {params:,} (published {entry.published.params:,}), "
            f"MACs {macs_m} M (reference {entry.published.macs_m} M) - {entry.published.source}"
            + (f"; note: {entry.published.note}" if entry.published.note else ""))
    print(line)
    record_result(row_for(natural_subject, "architecture", line=line))
    assert params == entry.published.params, line
    assert macs_m == entry.published.macs_m, line
