"""Write one benchmark's section of BENCHMARKS.md, stamped with the machine and the date."""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
from pathlib import Path

from digit_app.config import PROJECT_ROOT

BENCHMARKS_MD = PROJECT_ROOT / "BENCHMARKS.md"
_HEADER = (
    "# Benchmarks\n\n"
    "Each section is written by its script in `benchmarks/` (run `make bench`, or the command\n"
    "given in the section) and says on which machine and when it was measured.\n"
)


def machine() -> str:
    """A one-line description of the machine the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {mem_kb / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        mem = ""
    return f"{cpu}, {len(os.sched_getaffinity(0))} cores{mem}, no GPU, Python {platform.python_version()}"


def stamp(command: str) -> str:
    """When, where and how a section's figures were measured."""
    return f"_Measured {dt.date.today().isoformat()} on {machine()}, by `{command}`._"


def write_section(
    name: str, title: str, body: str, path: Path = BENCHMARKS_MD, command: str | None = None
) -> None:
    """Replace (or append) the section `name` (measured by `command`, by default `python -m
    benchmarks.<name>`), leaving everything else as it is. Only the title, the stamp and `body` go between the section's
    markers, so anything written there by hand is lost at the next run: notes go outside."""
    text = path.read_text() if path.exists() else _HEADER
    block = (
        f"<!-- begin:{name} -->\n## {title}\n\n{stamp(command or f'python -m benchmarks.{name}')}\n\n"
        f"{body.strip()}\n<!-- end:{name} -->"
    )
    pattern = re.compile(rf"<!-- begin:{re.escape(name)} -->.*?<!-- end:{re.escape(name)} -->", re.S)
    text = (
        pattern.sub(lambda _m: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    )
    path.write_text(text)
