"""Suspect corrections: how many wrong labels are flagged, and how many honest corrections are not.

    python -m benchmarks.suspects [--no-write]

The served version scores each stored label as a retraining does (`training.gate.score_labels`:
the model's reading, the labels of the nearest digits of the replay pool, MNIST and real
train-split handwriting, in the model's features, and the string reader's probability of the
label), with the default retraining config's threshold. No model is trained or published.

  honest     every digit by a dev writer (the sets of `benchmarks.retrain`) that the served model
             reads wrong through the app's own path, with its true label
  poisoned   dev writers' digits the model reads right, stored under another digit (seeded)
  1 -> 7     someone stores every 1 as a 7: dev writers' 1s the model reads right, labelled 7

`--tune` instead scores the validation writers of the served version's card (train splits, never
dev): their digits drawn four ways (`training.render`), the misread ones as honest corrections
and the rest, relabelled, as poisoned ones, and prints each threshold's flag rates. The
threshold is chosen there, never on these dev figures.
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from benchmarks.report import write_section
from digit_app.config import RetrainConfig, get_settings, retrain_config_dict


def _served_keras() -> tuple[object, int]:
    from digit_app import model_store
    from training.export import KERAS_FILE
    from training.model import load_model

    model_dir = get_settings().model_dir
    version = model_store.latest_version(model_dir)
    return load_model(
        model_store.version_dir(model_dir, version) / model_store.EXTRA_DIR / KERAS_FILE
    ), version


def _pool(cfg: RetrainConfig) -> tuple[np.ndarray, np.ndarray]:
    from benchmarks.handwriting import mnist_dir
    from training.data import load_mnist
    from training.replay import replay_pool

    x, y, _ = replay_pool(cfg, load_mnist(mnist_dir(), progress=False))
    return x, y


def _flagged(cfg: RetrainConfig, model: object, pool: tuple, x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    from training.gate import score_labels, second_opinion
    from training.replay import teacher_view

    if not len(x):
        return np.zeros(0)
    bank = (teacher_view(model, pool[0]).unit, pool[1])
    second = second_opinion(cfg, x, labels)
    return np.array([s.score for s in score_labels(cfg, teacher_view(model, x), labels, bank, second)])


def dev_cases() -> dict[str, tuple[np.ndarray, np.ndarray, str]]:
    """(28x28 inputs, stored labels, where from) per case, read through the app's own path."""
    from benchmarks.retrain import _collect

    wrong, held, right, origin = _collect(10_000)
    honest = wrong + held
    rng = np.random.default_rng(0)
    right = [right[i] for i in rng.permutation(len(right))]
    poisoned = right[:200]
    ones = [r for r in right if r[1] == 1][:200]

    def stack(items: list) -> np.ndarray:
        return np.stack([d.image28 for d, _label, _v in items]) if items else np.zeros((0, 28, 28))

    shift = rng.integers(1, 10, len(poisoned))
    where = ", ".join(f"{k} {v}" for k, v in origin.items())
    return {
        "honest": (stack(honest), np.array([label for _d, label, _v in honest]), f"dev splits: {where}"),
        "poisoned": (
            stack(poisoned),
            np.array([(label + s) % 10 for (_d, label, _v), s in zip(poisoned, shift)]),
            "dev splits, read right, another digit stored",
        ),
        "1 -> 7": (stack(ones), np.full(len(ones), 7), "dev splits' 1s, read right, stored as 7"),
    }


def validation_cases(model: object, version: int) -> dict[str, tuple[np.ndarray, np.ndarray, str]]:
    """The same cases built from the served version's validation writers (train splits)."""
    from benchmarks.handwriting import handwriting_dir
    from digit_app import model_store
    from training.handwriting import load_set
    from training.mixing import train_samples
    from training.render import render

    card = model_store.read_card(get_settings().model_dir, version)
    xs, ys = [], []
    for name, entry in card["data"]["handwriting"].items():
        held = set(entry.get("val_writers") or [])
        if not held:
            continue
        samples = [
            s
            for s in train_samples(load_set(name, root=handwriting_dir(), progress=False))
            if s.writer in held
        ]
        r = render(samples, 4, 0, desc=f"{name} validation")
        xs.append(r.images.reshape(-1, 28, 28))
        ys.append(np.repeat(r.labels, r.images.shape[1]))
    x = np.concatenate(xs).astype(np.float32) / 255.0
    y = np.concatenate(ys).astype(np.int64)
    read = model.predict(x[..., None], batch_size=1024, verbose=0).argmax(1)
    wrong, right = read != y, np.flatnonzero(read == y)
    pick = np.random.default_rng(0).permutation(right)[:2000]
    shift = np.random.default_rng(1).integers(1, 10, len(pick))
    return {
        "honest": (x[wrong], y[wrong], "validation writers, misread"),
        "poisoned": (x[pick], (y[pick] + shift) % 10, "validation writers, read right, relabelled"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.suspects", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--tune", action="store_true", help="Flag rates per threshold on the validation writers."
    )
    parser.add_argument(
        "--no-write", action="store_true", help="Print the figures, leave BENCHMARKS.md alone."
    )
    parser.add_argument(
        "--without-string-reader",
        action="store_true",
        help="Score with the served model and its neighbours only (`suspect_string_reader` off).",
    )
    args = parser.parse_args(argv)

    cfg = RetrainConfig.from_dict(retrain_config_dict())
    if args.without_string_reader:
        cfg = dataclasses.replace(cfg, suspect_string_reader=False)
    model, version = _served_keras()
    pool = _pool(cfg)
    cases = validation_cases(model, version) if args.tune else dev_cases()
    scores = {name: _flagged(cfg, model, pool, x, y) for name, (x, y, _) in cases.items()}
    if args.tune:
        print(f"{'threshold':>9} {'poisoned flagged':>17} {'honest flagged':>15}")
        for t in (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99, 0.995):
            print(
                f"{t:>9g} {np.mean(scores['poisoned'] >= t):>17.1%} {np.mean(scores['honest'] >= t):>15.1%}"
            )
        print(f"(honest {len(scores['honest'])}, poisoned {len(scores['poisoned'])})")
        return 0
    t = cfg.suspect_threshold
    targets = {"honest": "<= 10%", "poisoned": ">= 90%", "1 -> 7": "report"}
    rows = [
        f"| {name} ({where}) | {len(scores[name])} | **{np.mean(scores[name] >= t):.1%}** | {targets[name]} |"
        for name, (_x, _y, where) in cases.items()
    ]
    body = (
        f"Model mnist_cnn v{version}; threshold {t} (`suspect_threshold`, chosen with `--tune` on the"
        f" validation writers); {cfg.suspect_neighbours} neighbours among {len(pool[1]):,} replay digits.\n\n"
        "| stored corrections | n | flagged suspect | target |\n|---|---|---|---|\n" + "\n".join(rows)
    )
    print(body)
    if not args.no_write:
        write_section("suspects", "Suspect corrections", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
