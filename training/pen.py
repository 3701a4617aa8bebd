"""Train the pen model: read a drawing from the path of the pen, not from its ink.

In: the train splits of the pen sets (pendigits, UNIPEN) and the digit-model version it is
blended with. Out: `<model_store>/pen_digit/<N>/`, a SavedModel whose `serving_default` maps
strokes [None,64,5] (`digit_app.pen.encode`) to probabilities [None,10], with its Lite twin and
a card holding the blend weight the Predictor uses.

Why: the image model sees 28x28 ink; how a digit was written is lost in it (a one-stroke 4
against a closed-top 4, a 9's open loop against a 3's bend). The Draw page has the strokes, so
a second opinion from them costs a fraction of a millisecond. The two answers are blended as
p ~ p_image^(1-w) * p_pen^w. The digit model's validation writers (from its card) are held
out here too, so `w` is chosen on writers neither model learned from (lowest log-loss), never
on dev writers. docs/pen-model.md has the measurements.

    python -m training.pen            # publish <model_store>/pen_digit/<next version>
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from typing import Any

import numpy as np

from digit_app import model_store
from digit_app.config import get_settings
from digit_app.pen import PEN_FEATURES, PEN_POINTS, blend, encode
from training.config import PenConfig, add_config_arguments, config_from_args
from training.handwriting import HandwritingSet, Sample, load_sets
from training.mixing import split_by_writer, train_samples
from training.render import pen_copies, to_input, varied

PEN_SETS = ("pendigits", "unipen")
INPUT_NAME = "strokes"
OUTPUT_NAME = "probabilities"
WEIGHTS = np.round(np.arange(0.0, 0.951, 0.05), 2)  # blend weights tried on the validation writers


def build_pen_model() -> Any:
    """A 1-D CNN over the 64 pen points: local shape (corners, loops) then where it sits."""
    import keras
    from keras import layers

    inputs = keras.Input((PEN_POINTS, PEN_FEATURES), name=INPUT_NAME)
    x = inputs
    for filters, pool in ((64, True), (128, True), (192, False)):
        for _ in range(1 if filters == 192 else 2):
            x = layers.Conv1D(filters, 5 if filters == 64 else 3, padding="same", use_bias=False)(x)
            x = layers.BatchNormalization()(x)
            x = layers.ReLU()(x)
        if pool:
            x = layers.MaxPooling1D(2)(x)
    x = layers.Concatenate()([layers.GlobalAveragePooling1D()(x), layers.GlobalMaxPooling1D()(x)])
    x = layers.Dropout(0.3)(x)
    outputs = layers.Dense(10, activation="softmax", name=OUTPUT_NAME)(x)
    return keras.Model(inputs, outputs, name="pen_digit")


def encoded(samples: list[Sample], rng: np.random.Generator | None = None, share: float = 0.0) -> np.ndarray:
    """(N, 64, 5): each drawing as written, or with `rng` a `share` of them varied
    (`training.render.varied`: turned, slanted, resampled, trembling)."""
    rows = []
    for s in samples:
        strokes = [np.asarray(p, np.float64) for p in s.strokes if len(p)]
        if rng is not None and rng.random() < share:
            strokes = varied(strokes, rng)
        rows.append(encode(strokes))
    return np.stack(rows)


def usable(samples: list[Sample]) -> list[Sample]:
    """Drawings the encoding takes (a point at least, not more strokes than it has room for)."""
    return [s for s in samples if s.strokes and encode(list(s.strokes)) is not None]


def split_sets(sets: dict[str, HandwritingSet], card: dict, limit: int | None) -> tuple[list, list, dict]:
    """(train, validation, card data): the validation writers are the ones the digit-model
    version held out (listed in its card; else its seed and writer fraction choose them the same
    way), so the blend is chosen on writers both models lack."""
    seed = int(card.get("config", {}).get("seed", 0))
    fraction = float(card.get("config", {}).get("val_writer_fraction", 0.1))
    listed = card.get("data", {}).get("handwriting", {})
    train, val, data = [], [], {}
    for name, hw in sets.items():
        samples = usable(train_samples(hw))[:limit] if limit else usable(train_samples(hw))
        if "val_writers" in listed.get(name, {}):
            held = set(listed[name]["val_writers"])
            tr = [s for s in samples if s.writer not in held]
            va = [s for s in samples if s.writer in held]
        else:
            tr, va, held = split_by_writer(samples, fraction, seed)
        train += tr
        val += [(name, s) for s in va]
        data[name] = {
            "files": hw.files,
            "source": hw.source,
            "train_samples": len(tr),
            "train_writers": len({s.writer for s in tr}),
            "val_samples": len(va),
            "val_writers": sorted(held),
        }
    return train, val, data


def image_probabilities(samples: list[Sample], version: int) -> np.ndarray:
    """The digit model's answers for drawings rendered as the Draw page renders them."""
    from digit_app.predictor import Predictor

    predictor = Predictor.load(get_settings().model_dir, version)
    rng = np.random.default_rng(0)
    images = []
    for s in samples:
        x = to_input(pen_copies([p for p in s.strokes if len(p)], 1, rng)[0])
        images.append(np.zeros((28, 28), np.uint8) if x is None else x)
    return predictor.predict_probabilities(np.stack(images).astype(np.float32)[..., None] / 255.0)


def choose_weight(image: np.ndarray, pen: np.ndarray, labels: np.ndarray) -> tuple[float, dict[str, float]]:
    """The blend weight with the lowest log-loss on the validation writers, and each weight's loss."""
    losses = {}
    for w in WEIGHTS:
        p = blend(image, pen, float(w))
        losses[f"{w:.2f}"] = float(-np.log(np.maximum(p[np.arange(len(labels)), labels], 1e-12)).mean())
    best = min(losses, key=losses.get)
    return float(best), losses


def train(cfg: PenConfig, verbose: int = 1) -> dict[str, Any]:
    """Fit the pen model, choose its blend weight, publish it; returns its card."""
    import keras
    from tqdm import tqdm

    from training.export import git_commit, publish_model

    commit = git_commit()
    t0 = time.perf_counter()
    settings = get_settings()
    version = cfg.pairs_with_version or model_store.latest_version(settings.model_dir)
    digit_card = model_store.read_card(settings.model_dir, version)
    sets, _ = load_sets(PEN_SETS, cfg.handwriting_dir, progress=verbose > 0)
    train_set, val_pairs, data = split_sets(sets, digit_card, cfg.limit)
    val_set = [s for _, s in val_pairs]
    if not train_set or not val_set:
        raise ValueError("the pen sets gave no training or no validation drawings")
    y = np.array([s.label for s in train_set])
    y_val = np.array([s.label for s in val_set])
    x_val = encoded(val_set)

    keras.utils.set_random_seed(cfg.seed)
    model = build_pen_model()
    steps = cfg.epochs * max(1, len(train_set) // cfg.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(
        cfg.learning_rate / 30, steps, warmup_target=cfg.learning_rate, warmup_steps=max(1, steps // 10)
    )
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=1e-4),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
        metrics=["accuracy"],
    )
    rng = np.random.default_rng(cfg.seed)
    history: dict[str, list[float]] = {"loss": [], "val_accuracy": []}
    for _ in tqdm(range(cfg.epochs), desc="pen model", unit="epoch", disable=verbose == 0):
        x = encoded(train_set, rng, cfg.varied_share)  # every pass draws each digit anew
        fit = model.fit(x, np.eye(10)[y], batch_size=cfg.batch_size, epochs=1, verbose=0, shuffle=True)
        history["loss"].append(float(fit.history["loss"][0]))
        history["val_accuracy"].append(float((model.predict(x_val, verbose=0).argmax(1) == y_val).mean()))

    pen = model.predict(x_val, batch_size=1024, verbose=0)
    image = image_probabilities(val_set, version)
    weight, losses = choose_weight(image, pen, y_val)
    names = np.array([n for n, _ in val_pairs])
    validation = {}
    for name in PEN_SETS:
        m = names == name
        if m.any():
            validation[name] = {
                "drawings": int(m.sum()),
                "pen": float((pen[m].argmax(1) == y_val[m]).mean()),
                "image": float((image[m].argmax(1) == y_val[m]).mean()),
                "blended": float((blend(image[m], pen[m], weight).argmax(1) == y_val[m]).mean()),
            }
    card = {
        "model_name": "pen_digit",
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": commit,
        "config": cfg.to_dict(),
        "pairs_with": {"model": settings.model_name, "version": version},
        "blend_weight": weight,
        "blend_log_loss": losses,
        "data": data,
        "validation": validation,
        "history": history,
        "signature": {"input": INPUT_NAME, "output": OUTPUT_NAME, "shape": [None, PEN_POINTS, PEN_FEATURES]},
        "timings": {"total_seconds": round(time.perf_counter() - t0, 1)},
    }
    card["version"] = publish_model(
        model, cfg.resolved_out(), card, input_name=INPUT_NAME, input_shape=(PEN_POINTS, PEN_FEATURES)
    )
    return card


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.pen",
        description="Train the pen model the Draw page blends with the digit model; publish a new version.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_config_arguments(parser, PenConfig)
    cfg = config_from_args(parser.parse_args(argv), PenConfig)
    from training.data import DataError

    try:
        card = train(cfg)
    except (DataError, model_store.ModelStoreError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"published {cfg.resolved_out()}/{card['version']}: blend weight {card['blend_weight']:.2f}")
    for name, v in card["validation"].items():
        print(
            f"  {name} validation writers ({v['drawings']} drawings): pen {v['pen']:.2%},"
            f" image {v['image']:.2%}, blended {v['blended']:.2%}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
