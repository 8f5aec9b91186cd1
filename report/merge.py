"""Merge the reports of shards (separate processes or CI jobs, each with its own --report-dir) into the
report one run would have written: the union of their result rows, written by the same renderers.

    python -m report.merge OUT_DIR SHARD_DIR [SHARD_DIR ...]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from report.files import JSON_NAME, load_report, write_all


def merge(shards: list[Path], out_dir: Path, baseline: Path | None = None) -> list[Path]:
    """Rows of every shard's report.json (a case reported twice keeps the later shard's row); the
    environment of the first shard, with the union of their column orders."""
    rows, env, columns = {}, None, []
    for shard in shards:
        report = load_report(Path(shard) / JSON_NAME)
        env = env or report["environment"]
        columns += [c for c in report["environment"].get("columns", []) if c not in columns]
        for row in report["results"]:
            rows[(row.kind, row.case)] = row
    if env is None:
        raise ValueError("no shard reports to merge")
    return write_all(list(rows.values()), out_dir, {**env, "columns": columns}, baseline)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("shards", type=Path, nargs="+", help="report directories written by --report-dir")
    args = parser.parse_args(argv)
    try:
        paths = merge(args.shards, args.out_dir)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 1
    print("merged report: " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
