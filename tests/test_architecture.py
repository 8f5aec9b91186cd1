"""Every registered table against its published parameter count and MAC figure."""
from __future__ import annotations

import pytest

from models import build, count_macs, count_params


@pytest.mark.architecture
def test_architecture(subject, record_result):
    entry, arch = subject.entry, subject.entry.arch
    net = build(arch)
    params, macs_m = count_params(net), round(count_macs(net, arch.input) / 1e6, 1)
    line = (f"{subject.id}: params {params:,} (published {entry.published.params:,}), "
            f"MACs {macs_m} M (reference {entry.published.macs_m} M) - {entry.published.source}"
            + (f"; note: {entry.published.note}" if entry.published.note else ""))
    print(line)
    record_result(case=subject.id, kind="architecture", model=subject.id, line=line)
    assert params == entry.published.params, line
    assert macs_m == entry.published.macs_m, line
