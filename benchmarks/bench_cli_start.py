"""Cold start of ``turnkit --help`` against ``pytest --version`` (see docs/architecture.md, "Bars").

Run: ``python benchmarks/bench_cli_start.py``. Both commands are started as
fresh processes the same number of times, interleaved so that the machine's
state affects both alike; the ratio of the medians is printed (bar: <= 1.0).
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time


def once(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(rounds: int = 15) -> None:
    turnkit = shutil.which("turnkit")
    if turnkit is None:
        sys.exit("turnkit is not on PATH: install it first (see README)")
    ours, theirs = [], []
    for _ in range(rounds):
        ours.append(once([turnkit, "--help"]))
        theirs.append(once([sys.executable, "-m", "pytest", "--version"]))
    a, b = statistics.median(ours), statistics.median(theirs)
    print(f"turnkit --help     {a * 1000:7.1f} ms (median of {rounds})")
    print(f"pytest --version   {b * 1000:7.1f} ms")
    print(f"ratio              {a / b:7.2f}")


if __name__ == "__main__":
    main()
