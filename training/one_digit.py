"""Train the one-digit checker: is this piece one digit, or two touching digits or a piece of one?

The digit model answers "which digit" for anything it is shown, often confidently: two touching
digits (a 2 and an 8, two 0s) cut out as one piece are read as one 8. Segmentation tries the
cuts and keeps the reading the model is surest of, so such a merge can win and a digit goes
missing (the commonest cheque error). This small CNN gives segmentation the missing evidence,
P(one digit), learned from synthetic pieces built from MNIST the way segmentation cuts them:

- one digit: an MNIST digit written about 60 px tall;
- not one digit: two MNIST digits side by side, touching or overlapping (half of the pieces),
  a digit cut through (a quarter: its left or right part), a digit with a sliver of its
  neighbour (a quarter).

Every piece is normalised by the app's own pipeline (`digit_app.reading.normalize.normalize_digit`),
so the checker sees exactly what the digit model sees. The digits come only from the MNIST
training images a digit-model version trained on (its card's split), so the benchmarks that
read that version's held-out digits stay on unseen digits.

    python -m training.one_digit            # publish <model_store>/one_digit/<next version>
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from typing import Any

import cv2
import numpy as np

from digit_app import model_store
from digit_app.config import get_settings
from digit_app.reading.normalize import normalize_digit
from training.config import OneDigitConfig, add_config_arguments, config_from_args

HEIGHT = 60  # px: how tall a written digit is drawn before normalising (as in the strings benchmark)
INPUT_NAME = "image"
OUTPUT_NAME = "one_digit"


def _glyph(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An MNIST digit's ink, cropped and scaled to about HEIGHT px (float 0..255)."""
    ys, xs = np.nonzero(img > 20)
    c = img[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].astype(np.float32)
    h = int(HEIGHT * rng.uniform(0.8, 1.1))
    return cv2.resize(c, (max(2, round(c.shape[1] * h / c.shape[0])), h), interpolation=cv2.INTER_LINEAR)


def _place(parts: list[tuple[np.ndarray, int, int]]) -> np.ndarray:
    """Glyphs at (x, y) on one black sheet (max where they overlap), 0..1."""
    width = max(x + g.shape[1] for g, x, _ in parts) + 4
    height = max(y + g.shape[0] for g, _, y in parts) + 4
    ink = np.zeros((height, width), np.float32)
    for g, x, y in parts:
        region = ink[y : y + g.shape[0], x : x + g.shape[1]]
        np.maximum(region, g, out=region)
    return ink / 255.0


def _pair(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Two digits side by side, from a small gap to a third of a digit's height of overlap."""
    x = max(1, a.shape[1] - int(rng.uniform(-0.05, 0.35) * HEIGHT))
    return _place([(a, 2, 2 + int(rng.integers(0, 8))), (b, 2 + x, 2 + int(rng.integers(0, 8)))])


def _cut(a: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """The left or right part of a digit cut through; None when the part would pass for a 1."""
    cut = int(a.shape[1] * rng.uniform(0.3, 0.7))
    part = a[:, :cut] if rng.random() < 0.5 else a[:, cut:]
    if part.max() < 50 or part.shape[1] < 0.45 * part.shape[0]:
        return None  # a narrow upright piece is a 1 as often as not
    return _place([(part, 2, 2)])


def _with_sliver(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """A digit with the first 20-40% of its right neighbour touching it."""
    sliver = b[:, : max(2, int(b.shape[1] * rng.uniform(0.2, 0.4)))]
    if sliver.max() < 50:
        return None
    return _place([(a, 2, 2), (sliver, 2 + a.shape[1] - int(rng.uniform(0, 0.1) * HEIGHT), 2)])


def make_pieces(digits: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n one-digit pieces and n not-one-digit pieces, normalised: (2n, 28, 28) float32, labels 1/0."""
    from tqdm import tqdm

    rng = np.random.default_rng(seed)

    def glyph() -> np.ndarray:
        return _glyph(digits[int(rng.integers(len(digits)))], rng)

    ones, others = [], []
    for k in tqdm(range(n), desc="pieces", unit="pair", mininterval=1.0, disable=n < 5000):
        ones.append(normalize_digit(_place([(glyph(), 2, 2)])))
        a, b = glyph(), glyph()
        kind = k % 4
        piece = _cut(a, rng) if kind == 2 else _with_sliver(a, b, rng) if kind == 3 else None
        others.append(normalize_digit(piece if piece is not None else _pair(a, b, rng)))
    x = np.stack(ones + others).astype(np.float32)
    y = np.r_[np.ones(n), np.zeros(n)].astype(np.float32)
    return x, y


def split_pieces(
    digits: np.ndarray, samples: int, seed: int, val_share: float = 0.1
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Shuffled training pieces and validation pieces, (N,28,28,1) and labels, made from disjoint
    digits: pieces that reuse a training piece's digits would make the validation figure flatter
    the checker (checker 1's card says 96.67%; on pieces of unseen MNIST test digits it is 96.39%)."""
    order = np.random.default_rng(seed).permutation(len(digits))
    n_val_digits = max(2, int(round(val_share * len(digits))))
    n_val = max(1, int(round(val_share * samples)))
    out = []
    for part, n, s in (
        (order[n_val_digits:], samples - n_val, seed),
        (order[:n_val_digits], n_val, seed + 1),
    ):
        x, y = make_pieces(digits[part], n, s)
        shuffle = np.random.default_rng(s).permutation(len(y))
        out.append((x[shuffle][..., None], y[shuffle]))
    return out[0], out[1]


def build_checker() -> Any:
    """A small CNN, (28,28,1) -> P(one digit): about 1/10 of the digit model's work per image."""
    import keras
    from keras import layers

    inputs = keras.Input((28, 28, 1), name=INPUT_NAME)
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(64, 3, activation="relu")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(64, activation="relu")(x)
    x = layers.Dropout(0.3)(x)
    outputs = layers.Dense(1, activation="sigmoid", name=OUTPUT_NAME)(x)
    return keras.Model(inputs, outputs, name="one_digit")


def training_digits(cfg: OneDigitConfig) -> tuple[np.ndarray, dict[str, Any]]:
    """MNIST training images the digit-model version trained on (never its held-out split)."""
    from training.data import held_out_for_card, load_mnist

    settings = get_settings()
    version = cfg.digits_from_version or model_store.latest_version(settings.model_dir)
    card = model_store.read_card(settings.model_dir, version)
    mnist = load_mnist(cfg.data_dir or settings.mnist_dir)
    train, val, _ = held_out_for_card(card, mnist.y_train, len(mnist.x_test))
    source = {
        "digit_model_version": version,
        "mnist_train_images": int(len(train)),
        "excluded": int(len(val)),
    }
    return mnist.x_train[train], source


def train(cfg: OneDigitConfig, verbose: int = 2) -> dict[str, Any]:
    """Make the pieces, fit the checker, publish it as the next version; returns its card."""
    import keras

    from training.export import git_commit, publish_model

    commit = git_commit()
    t0 = time.perf_counter()
    keras.utils.set_random_seed(cfg.seed)
    digits, source = training_digits(cfg)
    (x, y), (x_val, y_val) = split_pieces(digits, cfg.samples, cfg.seed)
    model = build_checker()
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(
        x,
        y,
        validation_data=(x_val, y_val),
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        verbose=verbose,
    )
    p = model.predict(x_val, batch_size=1024, verbose=0)[:, 0]
    val = {
        "accuracy": float(((p >= 0.5) == (y_val == 1)).mean()),
        "one_digit_kept": float((p[y_val == 1] >= 0.5).mean()),
        "not_one_caught": float((p[y_val == 0] < 0.5).mean()),
    }
    card = {
        "model_name": "one_digit",
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": commit,
        "config": cfg.to_dict(),
        "data": {
            **source,
            "pieces": int(len(y) + len(y_val)),
            "validation_pieces": int(len(y_val)),
            "validation_digits": "disjoint from the training pieces' digits",
        },
        "validation": val,
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "signature": {"input": INPUT_NAME, "output": OUTPUT_NAME, "shape": [None, 28, 28, 1]},
        "timings": {"total_seconds": round(time.perf_counter() - t0, 1)},
    }
    card["version"] = publish_model(model, cfg.resolved_out(), card, output_name=OUTPUT_NAME)
    return card


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.one_digit",
        description="Train the one-digit checker segmentation uses and publish it as a new version.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_config_arguments(parser, OneDigitConfig)
    cfg = config_from_args(parser.parse_args(argv), OneDigitConfig)
    from training.data import DataError

    try:
        card = train(cfg)
    except (DataError, model_store.ModelStoreError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    v = card["validation"]
    print(
        f"published {cfg.resolved_out()}/{card['version']}: validation accuracy {v['accuracy']:.2%}"
        f" (one digit kept {v['one_digit_kept']:.2%}, not one digit caught {v['not_one_caught']:.2%})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
