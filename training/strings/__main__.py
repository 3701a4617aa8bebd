"""python -m training.strings: train the string reader and publish it as the next version of
<model_store>/digit_string (see training/strings/__init__.py)."""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv: list[str] | None = None) -> int:
    from training.config import StringConfig, add_config_arguments, config_from_args

    parser = argparse.ArgumentParser(
        prog="python -m training.strings",
        description="Train the string reader (CNN + BiLSTM + CTC) on synthetic numbers made from the"
        " train splits of the real-handwriting sets and MNIST's training images, choose its epoch on"
        " numbers of held-out writers, and publish it as the next version of <model_store>/digit_string.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_config_arguments(parser, StringConfig)
    cfg = config_from_args(parser.parse_args(argv), StringConfig)

    from digit_app.model_store import ModelStoreError
    from training.fetch import DataError
    from training.strings.train import train

    try:
        card = train(cfg)
    except (DataError, ModelStoreError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    v = card["validation"]
    print(
        f"published {cfg.resolved_out()}/{card['version']}: validation numbers (held-out writers)"
        f" exact {v['exact']:.2f}%, per digit {v['per_digit']:.2f}%, in {card['timings']['total_seconds'] / 60:.1f} min"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
