"""The Docker image: its size, its build times and its start time to healthy.

    python -m benchmarks.container [--starts 3] [--compare OTHER_DOCKERFILE]

Built and run with podman as the tests do (tests/container_support.py): the base image is a
stand-in made from Debian's packages, the commands are the README's. A cold build (--no-cache:
every layer again, every dependency downloaded), a warm build after a change to the code (on a
copy of the project with one file touched), and fresh starts of the README's `docker run` (new
volumes each time), timed from the command to the image's own HEALTHCHECK passing.
`--compare` builds another Dockerfile (e.g. an earlier single-stage one) for its size beside.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.report import write_section
from digit_app.config import PROJECT_ROOT

GB = 1e9


def _build(podman: object, context: Path, tag: str, *extra: str) -> float:
    started = time.monotonic()
    podman.run("build", *extra, "-t", tag, str(context), timeout=7200)
    return time.monotonic() - started


def _touched_copy(tmp: Path) -> Path:
    """The project as a build context, with one code file changed (what a developer's rebuild sees)."""
    copy = tmp / "project"
    ignore = shutil.ignore_patterns(".git", ".venv", "data", "reports", "__pycache__", ".*cache")
    shutil.copytree(PROJECT_ROOT, copy, ignore=ignore, symlinks=True)
    with open(copy / "digit_app" / "__init__.py", "a") as fh:
        fh.write(f"\n# touched by benchmarks.container at {time.time()}\n")
    return copy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.container", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--starts", type=int, default=3, help="Fresh starts to time to healthy.")
    parser.add_argument("--compare", type=Path, help="Another Dockerfile to build for its size.")
    parser.add_argument("--no-cold", action="store_true", help="Skip the cold (--no-cache) build.")
    args = parser.parse_args(argv)

    from tests.container_support import build_tag, dockerfile_bases, find_engine, running_app, volumes
    from tests.stand_ins import stand_in

    podman = find_engine()
    if isinstance(podman, str):
        print(f"cannot measure the image: {podman}")
        return 1
    base = stand_in(podman, dockerfile_bases()[0])
    tag = build_tag()
    rows = []
    if not args.no_cold:
        cold = _build(podman, PROJECT_ROOT, tag, "--no-cache")
        rows.append(f"| cold build (`--no-cache`, dependencies downloaded) | **{cold / 60:.1f} min** |")
    else:
        _build(podman, PROJECT_ROOT, tag)
    with tempfile.TemporaryDirectory() as tmp:
        warm = _build(podman, _touched_copy(Path(tmp)), f"{tag}-touched")
        podman.run("rmi", f"{tag}-touched", check=False)
    rows.append(f"| warm build after a code change | **{warm:.0f} s** |")
    size, base_size = podman.size(tag), podman.size(base)
    rows.append(f"| image size | **{size / GB:.2f} GB** |")
    rows.append(f"| of which the base image (stand-in) | {base_size / GB:.2f} GB |")
    if args.compare:
        _build(podman, PROJECT_ROOT, f"{tag}-compare", "-f", str(args.compare.resolve()))
        rows.append(f"| `{args.compare.name}` for comparison | {podman.size(f'{tag}-compare') / GB:.2f} GB |")
        podman.run("rmi", f"{tag}-compare", check=False)

    seconds = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.starts):
            podman.run("volume", "rm", "--force", *volumes(), check=False)
            with running_app(podman, tag, Path(tmp) / "run.log") as (_container, _url, took):
                seconds.append(took)
        podman.run("volume", "rm", "--force", *volumes(), check=False)
    runs = ", ".join(f"{s:.1f}" for s in seconds)
    rows.append(
        f"| start to healthy (new volumes), median | **{statistics.median(seconds):.1f} s** ({runs}) |"
    )

    podman_version = subprocess.run(["podman", "--version"], capture_output=True, text=True).stdout.strip()
    body = (
        f"The README's `docker build` and `docker run`, run by {podman_version} on overlay storage; "
        "the base image is the Debian-made stand-in of `tests/stand_ins.py`. Start to healthy is "
        "from the `docker run` command to the image's own HEALTHCHECK passing (run once a second).\n\n"
        "| figure | value |\n|---|---|\n" + "\n".join(rows)
    )
    print(body)
    write_section("container", "The Docker image", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
