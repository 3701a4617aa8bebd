"""Training benchmark: MNIST test accuracy, validation accuracy, training time and time to 99.5% validation accuracy.

    python -m benchmarks.training            # report the served model's card
    python -m benchmarks.training --retrain  # train with the default config into a temp store first

The figures come from the model card the training run writes, so the report is what the
run itself measured (its config, on this machine).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchmarks.report import write_section
from digit_app import model_store
from digit_app.config import get_settings


def summarize(card: dict, version: int | str) -> str:
    t = card["timings"]
    test = card["test"]
    worst = sorted(test["per_class"].items(), key=lambda kv: kv[1]["f1"])[:3]
    ttt = t.get("time_to_val_99_5_seconds")
    lowest = ", ".join(f"{c}: {r['f1']:.4f}" for c, r in worst)
    rows = [
        "| figure | value | target |",
        "|---|---|---|",
        f"| MNIST test accuracy (10,000 images) | **{test['accuracy']:.2%}** | >= 99.65% (stretch 99.70%) |",
        f"| macro precision / recall / F1 | {test['macro']['precision']:.4f} / {test['macro']['recall']:.4f}"
        f" / {test['macro']['f1']:.4f} | |",
        f"| best validation accuracy (MNIST and real writers held out) | {card['validation']['best_accuracy']:.2%}"
        f" (epoch {card['validation']['best_epoch']} of {card['config']['epochs']}) | |",
        f"| full training run (load, fit, evaluate, export) | {t.get('total_seconds', 0) / 60:.1f} min | <= 25 min on 2 cores |",
        f"| time to 99.5% validation accuracy | {'not reached' if ttt is None else f'{ttt / 60:.1f} min'} | |",
        f"| lowest per-class F1 | {lowest} | |",
    ]
    return (
        f"Model `{card['model_name']}` version {version}, trained by `python -m training.train` "
        f"({_config_words(card['config'])}, commit `{card['git_commit'][:12]}`), selected on validation only.\n\n"
        + "\n".join(rows)
    )


# Fields added after some versions were trained, with what the code did before they existed.
_BEFORE_FIELD = {"long_flag_deg": 55.0, "variant_copies": 1}


def _config_words(config: dict) -> str:
    """'default config', or the flags that differ from today's defaults (paths aside)."""
    from training.config import TrainConfig

    changed = []
    for key, default in TrainConfig().to_dict().items():
        if key in {"out", "data_dir", "handwriting_dir", "cache_renders"}:
            continue
        value = config.get(key, _BEFORE_FIELD.get(key, default))
        if value != default:
            changed.append(f"`--{key.replace('_', '-')} {value}`")
    return "default config" if not changed else "default config but " + " ".join(changed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.training", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--retrain", action="store_true", help="Train with the default config into a temp store first."
    )
    args = parser.parse_args(argv)
    if args.retrain:
        from training.config import TrainConfig
        from training.train import train

        out = Path(tempfile.mkdtemp()) / "mnist_cnn"
        card = train(TrainConfig(out=out))
        version: int | str = f"(temp store {out})"
    else:
        model_dir = get_settings().model_dir
        version = model_store.latest_version(model_dir)
        card = model_store.read_card(model_dir, version)
    body = summarize(card, version)
    print(body)
    write_section("training", "Training (MNIST)", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
