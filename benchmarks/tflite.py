"""TensorFlow Lite benchmark: size, MNIST test accuracy and latency of the float and int8 exports.

    python -m benchmarks.tflite [--version N]

Runs `python -m training.export_tflite` on the served version (files go to
`model_store/<name>-tflite/<N>/`, git-ignored) and records its report in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse

from benchmarks.report import write_section


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tflite", description=__doc__.split("\n")[0])
    parser.add_argument("--version", type=int, default=None, help="Model version (default: the served one).")
    args = parser.parse_args(argv)
    from training.export_tflite import export

    r = export(args.version)
    saved = r["savedmodel_test_accuracy"]
    rows = [
        "| model | size | MNIST test accuracy | latency p50 / p95 (1 image, 1 thread) | target |",
        "|---|---|---|---|---|",
        f"| SavedModel (served) | | {saved:.2%} | | |",
    ]
    for name, target in (("float", ""), ("int8", "within 0.2 point of the SavedModel")):
        m = r[name]
        rows.append(
            f"| TFLite {name} | {m['bytes'] / 1024:.0f} KiB | **{m['test_accuracy']:.2%}** "
            f"({100 * (m['test_accuracy'] - saved):+.2f} points) | {m['latency_ms']['p50']:.2f} / "
            f"{m['latency_ms']['p95']:.2f} ms | {target} |"
        )
    body = (
        f"`python -m benchmarks.tflite`: version {r['version']} exported by `python -m training.export_tflite` "
        f"(int8: full integer inside, float input/output, calibrated on {r['calibration_images']:,} MNIST "
        "training images), evaluated image by image with the TFLite interpreter.\n\n" + "\n".join(rows)
    )
    print(body)
    write_section("tflite", "TensorFlow Lite export", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
