"""Open a report.html in headless Chromium and check what a person would see: no console messages or
script errors, the matrix table, and every plot decoded (the page marks `data-plots-loaded="ok/total"`).

    python -m report.browser_check reports/latest/report.html [--screenshot page.png]

Exit 0 when the page is sound, 1 with the problems listed, 2 when no Chromium is installed
(Debian: `apt-get install chromium`).
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr", "--v=0",
         "--virtual-time-budget=10000"]
CONSOLE = re.compile(r":CONSOLE[:(]\d+\)?\] (.*)")


def find_browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def check(html: Path, browser: str, screenshot: Path | None = None, timeout: float = 120) -> list[str]:
    """Problems found on the page; empty when it is sound."""
    url = html.resolve().as_uri()
    run = subprocess.run([browser, *FLAGS, "--dump-dom", url], capture_output=True, text=True, timeout=timeout)
    if run.returncode != 0:
        return [f"{browser} exited {run.returncode}: {run.stderr[-1000:]}"]
    dom, problems = run.stdout, []
    problems += [f"console: {m}" for m in CONSOLE.findall(run.stderr)]
    loaded = re.search(r'data-plots-loaded="(\d+)/(\d+)"', dom)
    if not loaded:
        problems.append("the page's load handler never ran (no data-plots-loaded on <body>)")
    elif loaded.group(1) != loaded.group(2) or loaded.group(2) == "0":
        problems.append(f"plots loaded: {loaded.group(1)} of {loaded.group(2)}")
    if "<h2>Matrix</h2>" not in dom or not re.search(r"<td class=\"(pass|known|FAIL|)\"", dom):
        problems.append("no matrix table with result cells")
    if screenshot:
        subprocess.run([browser, *FLAGS, f"--screenshot={screenshot.resolve()}", "--window-size=1600,2400", url],
                       capture_output=True, timeout=timeout, check=False)
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html", type=Path, help="a report.html written by pytest --report-dir")
    parser.add_argument("--screenshot", type=Path, default=None, help="also save a PNG of the page")
    args = parser.parse_args(argv)
    browser = find_browser()
    if browser is None:
        print("no Chromium found (tried: " + ", ".join(BROWSERS) + "); on Debian: apt-get install chromium")
        return 2
    if not args.html.is_file():
        print(f"{args.html}: no such file; write a report with pytest --report-dir=DIR")
        return 1
    problems = check(args.html, browser, args.screenshot)
    for problem in problems:
        print(f"PROBLEM {problem}")
    print(f"{args.html}: " + ("opens cleanly in " + browser if not problems else f"{len(problems)} problem(s)"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
