"""`python -m digit_app.predict`: the JSON contract, bad files, exit status."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from digit_app.config import PROJECT_ROOT


def _write_paper(path: Path, text: str) -> Path:
    paper = np.full((120, 30 + 75 * len(text)), 240, np.uint8)
    cv2.putText(paper, text, (15, 100), cv2.FONT_HERSHEY_SIMPLEX, 3.2, 15, 9, cv2.LINE_AA)
    cv2.imwrite(str(path), paper)
    return path


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "digit_app.predict", *args], cwd=PROJECT_ROOT, capture_output=True, text=True
    )


def test_json_lines_for_good_and_bad_files(tmp_path: Path) -> None:
    good = _write_paper(tmp_path / "number.png", "305")
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((80, 80), 255, np.uint8))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    missing = tmp_path / "missing.png"
    out = _run("--json", str(good), str(bad), str(blank), str(missing))
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    records = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["file"] for r in records] == [str(good), str(bad), str(blank), str(missing)]
    for r in records:
        assert {"file", "digits", "confidence", "detail", "error"} <= set(r)
    number, broken, empty, absent = records
    assert number["error"] is None and number["digits"] == "305"
    assert len(number["detail"]) == 3
    for d in number["detail"]:
        assert len(d["box"]) == 4 and len(d["probabilities"]) == 10
        assert abs(sum(d["probabilities"]) - 1) < 1e-3
    xs = [d["box"][0] for d in number["detail"]]
    assert xs == sorted(xs)
    assert broken["error"] and broken["digits"] == ""
    assert empty["error"] is None and empty["digits"] == "" and empty["detail"] == []
    assert absent["error"] and "cannot read" in absent["error"]


def test_single_mode_and_human_output(tmp_path: Path) -> None:
    seven = _write_paper(tmp_path / "seven.png", "7")
    out = _run("--single", str(seven))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"{seven}: 7")


def test_help_documents_every_flag() -> None:
    out = _run("--help")
    assert out.returncode == 0
    for flag in ("--single", "--json", "--version", "--model-dir"):
        assert flag in out.stdout
