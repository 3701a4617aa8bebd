"""Recognize the digits in image files from the command line.

    python -m digit_app.predict scan.png photo.jpg          # one line per file
    python -m digit_app.predict --json *.png                # one JSON object per file and line
    python -m digit_app.predict --single cell.png           # the whole image is one digit

A file that cannot be read gets its error line and the run goes on; the exit status is 1 if
any file failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from digit_app.config import get_settings


def result_record(file: str, result: Any) -> dict[str, Any]:
    """The JSON contract of one file: file, digits, confidence, detail, error."""
    return {
        "file": file,
        "digits": result.digits,
        "confidence": round(float(result.confidence), 6),
        "detail": [
            {
                "box": [int(v) for v in d.box],
                "label": int(d.label),
                "shown": d.shown,
                "confidence": round(float(d.confidence), 6),
                "unsure": bool(d.unsure),
                "probabilities": [round(float(p), 6) for p in d.probabilities],
            }
            for d in result.detail
        ],
        "error": None,
        "message": result.message,
        "reader": result.reader,
    }


def error_record(file: str, message: str) -> dict[str, Any]:
    return {
        "file": file,
        "digits": "",
        "confidence": 0.0,
        "detail": [],
        "error": message,
        "message": None,
        "reader": None,
    }


def recognize_file(path: Path, predictor: Any, single: bool) -> dict[str, Any]:
    """Decode, preprocess and recognize one file; every failure becomes an error record."""
    from digit_app.imageio import ImageError, decode_image
    from digit_app.recognize import recognize

    settings = get_settings()
    try:
        size = path.stat().st_size
        if size > settings.max_upload_bytes:
            return error_record(
                str(path), f"file too large ({size:,} bytes; limit {settings.max_upload_bytes:,})"
            )
        data = path.read_bytes()
    except OSError as exc:
        return error_record(str(path), f"cannot read file: {exc.strerror or exc}")
    try:
        gray = decode_image(data, path.name)
    except ImageError as exc:
        return error_record(str(path), str(exc))
    return result_record(str(path), recognize(gray, predictor, single=single))


def _human(record: dict[str, Any]) -> str:
    if record["error"]:
        return f"{record['file']}: error: {record['error']}"
    if not record["digits"]:
        return f"{record['file']}: {record['message'] or 'no digit found'}"
    confs = " ".join(f"{d['shown']}:{d['confidence']:.2f}" for d in record["detail"])
    return f"{record['file']}: {record['digits']}  (confidence {record['confidence']:.2f}; {confs})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m digit_app.predict", description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="Image files (PNG, JPEG, ...).")
    parser.add_argument("--single", action="store_true", help="Treat each whole image as one digit.")
    parser.add_argument("--json", action="store_true", help="Print one JSON object per file and line.")
    parser.add_argument("--version", type=int, default=None, help="Model version (default: the served one).")
    parser.add_argument("--model-dir", type=Path, default=None, help="Model folder (default: from config).")
    args = parser.parse_args(argv)

    from digit_app.model_store import ModelStoreError
    from digit_app.predictor import Predictor, served_predictor

    try:
        if args.version is not None:
            model_dir = args.model_dir or get_settings().model_dir
            predictor = Predictor.load(model_dir, args.version, get_settings().unsure_threshold)
        else:
            predictor = served_predictor(args.model_dir)
    except (ModelStoreError, OSError, ValueError) as exc:
        print(f"error: cannot load the model: {exc}", file=sys.stderr)
        return 2

    files = args.files
    if len(files) > 20 and sys.stderr.isatty():
        from tqdm import tqdm

        files = tqdm(files, unit="file", file=sys.stderr)
    failed = 0
    for path in files:
        record = recognize_file(path, predictor, args.single)
        failed += record["error"] is not None
        print(json.dumps(record) if args.json else _human(record), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
