"""Run every benchmark and refresh BENCHMARKS.md: `python -m benchmarks` (or `make bench`).

python -m benchmarks                      # all
python -m benchmarks training speed       # some: training, handwriting, rules, strings, speed, browser_latency, retrain, tflite, container
"""

from __future__ import annotations

import importlib
import sys

ORDER = (
    "training",
    "handwriting",
    "rules",
    "strings",
    "speed",
    "browser_latency",
    "retrain",
    "tflite",
    "container",
)


def main(argv: list[str] | None = None) -> int:
    names = list(argv if argv is not None else sys.argv[1:]) or list(ORDER)
    if any(n in {"-h", "--help"} for n in names):
        print(__doc__)
        return 0
    unknown = [n for n in names if n not in ORDER]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(ORDER)}", file=sys.stderr)
        return 2
    status = 0
    for name in names:
        print(f"== {name}", flush=True)
        status |= importlib.import_module(f"benchmarks.{name}").main([])
    return status


if __name__ == "__main__":
    raise SystemExit(main())
