"""Fit the string model on synthetic numbers, choose the epoch on held-out writers, publish it.

In: a `StringConfig`. Out: `model_store/digit_string/<N>/` (a SavedModel in TensorFlow
Serving's layout, its card in assets.extra/) and its TensorFlow Lite twin beside it
(`digit_string-tflite/<N>/`), written by the store's one publishing path
(`training.export.publish_staged`), and the card as a dict.

Why: numbers are made from the train splits only; the validation numbers are made from the
digits of writers held out of training (`sources`), so the checkpoint is chosen on hands the
model never saw, never on dev writers or the cheques.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import numpy as np

from digit_app.ctc import best_path, edit_distance
from digit_app.string_input import HEIGHT
from training.config import StringConfig
from training.strings.dataset import Rows, batches, generate, pad_rows
from training.strings.model import INPUT_NAME, OUTPUT_NAME, build_model, ctc_loss

SIGNATURE = {
    "inputs": {
        INPUT_NAME: "float32 [batch, 32, width, 1]: rows of white ink on black in 0..1, the ink's"
        " box scaled to 28 rows with 2 blank rows above and below and 4 blank columns left and"
        " right, width a multiple of 4, padded on the right with 0 (digit_app/string_input.py)"
    },
    "outputs": {
        OUTPUT_NAME: "float32 [batch, width / 4, 11]: for each frame of 4 columns the probabilities"
        " of the digits 0-9 and, last, of blank; read the digits by CTC (the best path: each"
        " frame's top class, repeats merged, blanks dropped; digit_app/ctc.py)"
    },
}


def read_rows(model: Any, data: Rows, batch_size: int = 128) -> list[str]:
    """The best-path reading of every row, batched by width."""
    order = np.argsort([r.shape[1] for r in data.rows], kind="stable")
    out: list[str] = [""] * len(data.rows)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        x, frames = pad_rows([data.rows[i] for i in idx])
        probs = np.asarray(model(x, training=False))
        for i, p, t in zip(idx, probs, frames):
            out[i] = "".join(str(d.label) for d in best_path(p[:t]))
    return out


def scores(truth: list[str], got: list[str]) -> dict[str, float]:
    """Whole string exact and digits right (edit distance), in percent."""
    digits = sum(len(t) for t in truth)
    right = sum(max(0, len(t) - edit_distance(g, t)) for t, g in zip(truth, got))
    return {
        "strings": len(truth),
        "exact": 100.0 * float(np.mean([t == g for t, g in zip(truth, got)])) if truth else 0.0,
        "per_digit": 100.0 * right / max(1, digits),
    }


def _schedule(peak: float, total: int) -> Any:
    import keras

    warm = max(1, total // 20)
    return keras.optimizers.schedules.CosineDecay(
        peak / 10, total - warm, alpha=0.02, warmup_target=peak, warmup_steps=warm
    )


def fit(cfg: StringConfig, train: Rows, val: Rows, deadline: float) -> tuple[Any, dict[str, Any]]:
    """Train for `cfg.epochs` (or until `deadline`, a time.monotonic()), keeping the weights of
    the epoch that read the most validation numbers exactly."""
    import keras
    import tensorflow as tf
    from tqdm import tqdm

    keras.utils.set_random_seed(cfg.seed)
    model = build_model(cfg.width, cfg.rnn_units, cfg.head, cfg.dropout)
    steps = cfg.epochs * -(-len(train) // cfg.batch_size)
    optimizer = keras.optimizers.AdamW(
        _schedule(cfg.learning_rate, steps), weight_decay=cfg.weight_decay, clipnorm=5.0
    )
    spec = [
        tf.TensorSpec([None, 32, None, 1], tf.float32),
        tf.TensorSpec([None, None], tf.int32),
        tf.TensorSpec([None], tf.int32),
        tf.TensorSpec([None], tf.int32),
    ]

    @tf.function(input_signature=spec)
    def step(x: Any, y: Any, lengths: Any, frames: Any) -> Any:
        with tf.GradientTape() as tape:
            loss = ctc_loss(y, lengths, model(x, training=True), frames)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    rng = np.random.default_rng(cfg.seed)
    history: dict[str, list[float]] = {"loss": [], "val_exact": [], "val_per_digit": [], "seconds": []}
    best, best_weights, stopped = -1.0, None, None
    t0 = time.monotonic()
    for epoch in range(cfg.epochs):
        losses = []
        bar = tqdm(
            batches(train, cfg.batch_size, rng),
            total=-(-len(train) // cfg.batch_size),
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            unit="batch",
            mininterval=5,
            leave=False,
        )
        for x, y, lengths, frames in bar:
            losses.append(float(step(x, y, lengths, frames)))
            if len(losses) % 50 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
            if time.monotonic() > deadline:
                stopped = f"time limit in epoch {epoch + 1}"
                break
        s = scores(val.labels, read_rows(model, val))
        history["loss"].append(float(np.mean(losses)) if losses else float("nan"))
        history["val_exact"].append(s["exact"])
        history["val_per_digit"].append(s["per_digit"])
        history["seconds"].append(round(time.monotonic() - t0, 1))
        print(
            f"epoch {epoch + 1}: loss {history['loss'][-1]:.4f}, validation exact {s['exact']:.2f}%, per digit {s['per_digit']:.2f}%",
            flush=True,
        )
        if s["exact"] > best:
            best, best_weights = s["exact"], [w.copy() for w in model.get_weights()]
            history["best_epoch"] = epoch + 1
        if stopped:
            break
    if best_weights is not None:
        model.set_weights(best_weights)
    history["stopped"] = stopped
    return model, history


def make_card(
    cfg: StringConfig,
    data: dict[str, Any],
    history: dict[str, Any],
    validation: dict[str, Any],
    timings: dict[str, float],
) -> dict[str, Any]:
    from training.export import git_commit

    return {
        "model_name": "digit_string",
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "config": cfg.to_dict(),
        "data": data,
        "validation": validation,
        "history": history,
        "signature": SIGNATURE,
        "timings": timings,
    }


def publish(model: Any, out: Path, card: dict[str, Any]) -> int:
    """The model as the next version of `out`, with its card, and its Lite twin beside it (for
    one row at a time: `publish_model`'s `twin_batch`)."""
    from training.export import publish_model

    return publish_model(
        model,
        out,
        card,
        twin_batch=1,
        input_name=INPUT_NAME,
        output_name=OUTPUT_NAME,
        input_shape=(HEIGHT, None, 1),
    )


def train(cfg: StringConfig) -> dict[str, Any]:
    """Make the numbers, fit, publish; returns the published version's card."""
    from training.strings.sources import load_pools

    t0 = time.monotonic()
    deadline = t0 + 60 * cfg.max_minutes
    train_pool, val_pool, data = load_pools(cfg)
    weights = (cfg.pen_share, cfg.canvas_share, cfg.glyph_share)
    t_load = time.monotonic()
    train_rows = generate(train_pool, cfg.strings, cfg.seed, cfg.workers, "training numbers", weights)
    val_rows = generate(val_pool, cfg.val_strings, cfg.seed + 1, cfg.workers, "validation numbers", weights)
    t_data = time.monotonic()
    data["numbers"] = _counts(train_rows, "train") | _counts(val_rows, "validation")
    model, history = fit(cfg, train_rows, val_rows, deadline)
    t_fit = time.monotonic()
    got = read_rows(model, val_rows)
    validation = scores(val_rows.labels, got)
    validation["by_kind"] = {
        k: scores(*zip(*[(t, g) for t, g, kk in zip(val_rows.labels, got, val_rows.kinds) if kk == k]))
        for k in sorted(set(val_rows.kinds))
    }
    timings = {
        "load_seconds": round(t_load - t0, 1),
        "data_seconds": round(t_data - t_load, 1),
        "fit_seconds": round(t_fit - t_data, 1),
    }
    card = make_card(cfg, data, history, validation, timings)
    card["version"] = publish(model, cfg.resolved_out(), card)
    card["timings"]["total_seconds"] = round(time.monotonic() - t0, 1)
    return card


def _counts(rows: Rows, name: str) -> dict[str, Any]:
    kinds = {k: rows.kinds.count(k) for k in sorted(set(rows.kinds))}
    return {
        name: {
            "strings": len(rows),
            "digits": sum(len(s) for s in rows.labels),
            "kinds": kinds,
            "no_ink": rows.dropped,
        }
    }
